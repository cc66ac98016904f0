package localhub

import (
	"crypto/x509"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/directmethods/iotdevice/internal/idcheck"
	"github.com/directmethods/iotdevice/sas"
)

// The hub's identity kept in Options.Dir: its CA, server certificate and
// service key, and the registered identities, in state.json.

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

// loadOrCreate loads the CA, server certificate and registry from dir, or
// creates them; with dir empty everything is new and kept in memory.
func (h *Hub) loadOrCreate(dir string) error {
	var st *persistedState
	if dir != "" {
		h.state = &stateWriter{dir: dir}
		var err error
		if st, err = loadState(dir); err != nil {
			return err
		}
	}
	if st == nil {
		st = &persistedState{}
	}
	var err error
	if st.CACert != "" {
		h.ca, err = parseKeyPair([]byte(st.CACert), []byte(st.CAKey))
	} else {
		h.ca, err = newCA(h.hostName)
	}
	if err != nil {
		return err
	}
	h.caPool = x509.NewCertPool()
	h.caPool.AddCert(h.ca.cert)
	if st.ServerCert != "" {
		h.server, err = parseKeyPair([]byte(st.ServerCert), []byte(st.ServerKey))
		if err == nil && !h.serverCertFits() {
			h.server = nil // another host name or CA: issue a new one
		}
	}
	if h.server == nil {
		if h.server, err = newServerCert(h.ca, h.hostName); err != nil {
			return err
		}
	}
	serviceKey := st.ServiceKey
	if _, err := sas.DecodeKey(serviceKey); err != nil {
		serviceKey = newKey()
	}
	h.reg = newRegistry(h.hostName, serviceKey)
	for _, p := range st.Identities {
		id := &identity{deviceID: p.DeviceID, moduleID: p.ModuleID, key: p.Key, thumbprint: p.Thumbprint,
			certPEM: []byte(p.CertPEM), keyPEM: []byte(p.KeyPEM),
			secondaryKey: p.SecondaryKey, secondaryThumbprint: p.SecondaryThumbprint}
		if err := idcheck.ID(id.deviceID); err != nil {
			return fmt.Errorf("localhub: %s: %w", stateFileName, err)
		}
		if id.caCerts, err = parseCertificatesPEM(p.CACerts); err != nil {
			return fmt.Errorf("localhub: %s: device %q: %w", stateFileName, id.deviceID, err)
		}
		h.reg.identities[id.name()] = id
		if p.Parent != "" && p.ModuleID == "" {
			h.reg.parents[p.DeviceID] = p.Parent
		}
	}
	h.reg.onChange = func() {
		if err := h.save(); err != nil {
			h.log.Error("localhub: saving state failed", "err", err)
		}
	}
	return nil
}

// serverCertFits reports whether the loaded server certificate is signed by
// the CA and valid for the host name.
func (h *Hub) serverCertFits() bool {
	_, err := h.server.cert.Verify(x509.VerifyOptions{
		DNSName:   h.hostName,
		Roots:     h.caPool,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return err == nil
}

// save writes the state to the hub's directory, if it has one.
func (h *Hub) save() error {
	if h.state == nil {
		return nil
	}
	return h.state.save(h.snapshot)
}

// snapshot returns the state to persist.
func (h *Hub) snapshot() *persistedState {
	st := &persistedState{
		CACert:     string(h.ca.certPEM),
		CAKey:      string(h.ca.keyPEM),
		ServerCert: string(h.server.certPEM),
		ServerKey:  string(h.server.keyPEM),
		ServiceKey: h.reg.serviceKey,
	}
	for _, id := range h.reg.all() {
		p := persistedIdentity{
			DeviceID: id.deviceID, ModuleID: id.moduleID, Key: id.key, Thumbprint: id.thumbprint,
			CertPEM: string(id.certPEM), KeyPEM: string(id.keyPEM),
			SecondaryKey: id.secondaryKey, SecondaryThumbprint: id.secondaryThumbprint,
			CACerts: certificatesPEM(id.caCerts),
		}
		if id.moduleID == "" {
			p.Parent = h.reg.parent(id.deviceID)
		}
		st.Identities = append(st.Identities, p)
	}
	return st
}
