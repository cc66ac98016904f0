package localhub

import (
	"crypto/x509"
	"fmt"

	"github.com/directmethods/iotdevice/sas"
)

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
		if err := sas.ValidateID(id.deviceID); err != nil {
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
