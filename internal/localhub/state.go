package localhub

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// File names inside Options.Dir.
const (
	stateFileName = "state.json" // keys and certificates, mode 0600
	caFileName    = "ca.pem"     // the CA certificate clients trust
)

// persistedState is the content of state.json.
type persistedState struct {
	CACert     string              `json:"caCert"`
	CAKey      string              `json:"caKey"`
	ServerCert string              `json:"serverCert"`
	ServerKey  string              `json:"serverKey"`
	ServiceKey string              `json:"serviceKey"`
	Identities []persistedIdentity `json:"identities"`
}

type persistedIdentity struct {
	DeviceID   string `json:"deviceId"`
	ModuleID   string `json:"moduleId,omitempty"`
	Key        string `json:"key,omitempty"`
	Thumbprint string `json:"thumbprint,omitempty"`
	CertPEM    string `json:"certPem,omitempty"`
	KeyPEM     string `json:"keyPem,omitempty"`
	Parent     string `json:"parent,omitempty"` // a leaf device's IoT Edge device
	// Set on devices provisioned by DPS.
	SecondaryKey        string   `json:"secondaryKey,omitempty"`
	SecondaryThumbprint string   `json:"secondaryThumbprint,omitempty"`
	CACerts             []string `json:"caCerts,omitempty"` // PEM
}

// loadState reads state.json from dir; it returns nil and no error when
// the file does not exist yet.
func loadState(dir string) (*persistedState, error) {
	var st persistedState
	if found, err := readJSONFile(filepath.Join(dir, stateFileName), &st); !found {
		return nil, err
	}
	return &st, nil
}

// stateWriter writes state.json atomically. Its mutex serialises the file
// writes themselves and guards nothing else.
type stateWriter struct {
	dir string
	mu  sync.Mutex
}

// save writes the state that snapshot returns to state.json (mode 0600)
// and the CA to ca.pem. snapshot runs under the writer's lock, so that the
// last write always holds the newest state.
func (w *stateWriter) save(snapshot func() *persistedState) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := snapshot()
	if err := writeJSONFile(filepath.Join(w.dir, stateFileName), st, 0o600); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(w.dir, caFileName), []byte(st.CACert), 0o644)
}

// writeFileAtomic writes through a temporary file and a rename, so that a
// crash never leaves a half-written file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("localhub: write %s: %w", filepath.Base(path), err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("localhub: write %s: %w", filepath.Base(path), err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("localhub: write %s: %w", filepath.Base(path), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("localhub: write %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("localhub: write %s: %w", filepath.Base(path), err)
	}
	return nil
}
