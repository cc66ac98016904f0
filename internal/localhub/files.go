package localhub

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ConnectionFileName is the file WriteConnectionFiles writes an identity's
// connection string to: "dev.txt", or "dev_mod.txt" for a module.
func ConnectionFileName(identity string) string {
	return strings.ReplaceAll(identity, "/", "_") + ".txt"
}

// WriteConnectionFiles writes into dir: ca.pem, service.txt (the service
// connection string), one <identity>.txt per identity, idscope.txt and
// dps.txt (the Device Provisioning Service's ID scope and service
// connection string) and, when the hub serves a workload API, one
// <dev>_<mod>.env per module (see EdgeEnvironment). The files holding
// keys get mode 0600.
func (h *Hub) WriteConnectionFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("localhub: create %s: %w", dir, err)
	}
	if err := writeFileAtomic(filepath.Join(dir, caFileName), h.ca.certPEM, 0o644); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, "service.txt"), []byte(h.ServiceConnectionString()+"\n"), 0o600); err != nil {
		return err
	}
	for _, id := range h.reg.all() {
		cs := h.reg.connectionString(id) + "\n"
		if err := writeFileAtomic(filepath.Join(dir, ConnectionFileName(id.name())), []byte(cs), 0o600); err != nil {
			return err
		}
	}
	if err := h.dps.writeFiles(dir); err != nil {
		return err
	}
	return h.writeEnvFiles(dir)
}
