package localhub

import (
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/directmethods/iotdevice/internal/idcheck"
)

// deviceCredential is how a device that DPS assigns to the hub
// authenticates to it: exactly one of symmetric keys, certificate
// thumbprints, or certificate authorities is set.
type deviceCredential struct {
	primaryKey, secondaryKey string              // base64 symmetric keys
	primaryThumbprint        string              // X.509 by thumbprint, upper-case hex SHA-256
	secondaryThumbprint      string              // or empty
	caCerts                  []*x509.Certificate // X.509 by certificate authority
}

// validate checks that exactly one kind of credential is set.
func (c deviceCredential) validate() error {
	kinds := 0
	if c.primaryKey != "" {
		kinds++
	}
	if c.primaryThumbprint != "" {
		kinds++
	}
	if len(c.caCerts) > 0 {
		kinds++
	}
	if kinds != 1 {
		return errors.New("localhub: a provisioned device needs exactly one kind of credential")
	}
	return nil
}

// provision registers deviceID with cred, or replaces the authentication
// of the device already registered under that id, as DPS does when it
// assigns a device to its hub. The device's modules and parent are kept;
// connections already authenticated stay up.
func (r *registry) provision(deviceID string, cred deviceCredential) (*identity, error) {
	if err := idcheck.ID(deviceID); err != nil {
		return nil, fmt.Errorf("localhub: device id: %w", err)
	}
	if err := cred.validate(); err != nil {
		return nil, err
	}
	id := &identity{
		deviceID:            deviceID,
		key:                 cred.primaryKey,
		secondaryKey:        cred.secondaryKey,
		thumbprint:          cred.primaryThumbprint,
		secondaryThumbprint: cred.secondaryThumbprint,
		caCerts:             cred.caCerts,
	}
	r.mu.Lock()
	r.identities[deviceID] = id // replaces, never mutates: see identity
	r.mu.Unlock()
	r.changed()
	return id, nil
}
