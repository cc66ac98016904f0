package localhub

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/directmethods/iotdevice/internal/idcheck"
	"github.com/directmethods/iotdevice/internal/sastoken"
	"github.com/directmethods/iotdevice/sas"
)

// ServicePolicy is the name of the hub's only shared access policy. It has
// every permission (service connect, device connect, registry read/write).
const ServicePolicy = "iothubowner"

// Registry errors, testable with errors.Is.
var (
	// ErrUnknownIdentity reports a device or module that is not registered.
	ErrUnknownIdentity = errors.New("localhub: identity not registered")
	// ErrIdentityExists reports an id registered with another kind of
	// authentication (a key where a certificate was asked for, or the reverse).
	ErrIdentityExists = errors.New("localhub: identity already registered differently")
	// ErrUnauthorized reports a token or certificate that does not
	// authenticate the identity it is presented for.
	ErrUnauthorized = errors.New("localhub: unauthorized")
)

// identity is one registered device or module. It is never changed once
// registered: a change replaces it in the registry, so that readers may
// use the one they looked up without a lock.
type identity struct {
	deviceID, moduleID string
	key                string // base64 symmetric key; empty for X.509 devices
	secondaryKey       string // base64, or empty; devices provisioned by DPS have one
	thumbprint         string // upper-case hex SHA-256 of the client certificate
	// secondaryThumbprint is a second certificate's, or empty.
	secondaryThumbprint string
	certPEM, keyPEM     []byte // an X.509 device's certificate, kept to hand it out again
	// caCerts, for a device authenticated by certificate authority,
	// are the CAs its certificate must chain to (an X.509 enrollment
	// group's signing certificates); its CN must be the device id.
	caCerts []*x509.Certificate
}

// usesCertificate reports whether the identity authenticates with a
// client certificate: by thumbprint or by certificate authority.
func (id *identity) usesCertificate() bool {
	return id.thumbprint != "" || len(id.caCerts) > 0
}

// name is "dev" or "dev/mod", the form used throughout the hub.
func (id *identity) name() string { return identityName(id.deviceID, id.moduleID) }

func identityName(deviceID, moduleID string) string {
	if moduleID == "" {
		return deviceID
	}
	return deviceID + "/" + moduleID
}

// splitIdentity splits "dev" or "dev/mod" and validates both ids.
func splitIdentity(name string) (deviceID, moduleID string, err error) {
	deviceID, moduleID, hasModule := strings.Cut(name, "/")
	if err := idcheck.ID(deviceID); err != nil {
		return "", "", fmt.Errorf("localhub: device id: %w", err)
	}
	if hasModule {
		if err := idcheck.ID(moduleID); err != nil {
			return "", "", fmt.Errorf("localhub: module id: %w", err)
		}
	}
	return deviceID, moduleID, nil
}

// registry holds the identities and the service policy key. It is safe for
// concurrent use; onChange runs after each change, outside the lock.
type registry struct {
	hostName string
	onChange func()

	mu         sync.Mutex
	serviceKey string
	identities map[string]*identity
	parents    map[string]string // leaf device id -> its IoT Edge device's id
}

func newRegistry(hostName, serviceKey string) *registry {
	return &registry{hostName: hostName, serviceKey: serviceKey, identities: map[string]*identity{}, parents: map[string]string{}}
}

// setParent makes the device leafID a leaf (downstream) device of the IoT
// Edge device parentID, as IoT Hub's device scope does: it then connects
// through that device's edge hub, whose modules may call its methods.
func (r *registry) setParent(leafID, parentID string) error {
	r.mu.Lock()
	switch {
	case r.identities[leafID] == nil:
		r.mu.Unlock()
		return fmt.Errorf("%w: leaf device %q", ErrUnknownIdentity, leafID)
	case r.identities[parentID] == nil:
		r.mu.Unlock()
		return fmt.Errorf("%w: parent device %q", ErrUnknownIdentity, parentID)
	case leafID == parentID:
		r.mu.Unlock()
		return fmt.Errorf("localhub: device %q cannot be its own parent", leafID)
	}
	changed := r.parents[leafID] != parentID
	r.parents[leafID] = parentID
	r.mu.Unlock()
	if changed {
		r.changed()
	}
	return nil
}

// parent returns the IoT Edge device a leaf device connects through, or
// "" for a device that connects to the hub itself.
func (r *registry) parent(deviceID string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.parents[deviceID]
}

// newKey returns a random 32-byte key in base64, as the hub generates them.
func newKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.StdEncoding.EncodeToString(b)
}

// addKeyIdentity registers a symmetric-key device or module, or returns
// the existing one unchanged, so that restarts keep their keys.
func (r *registry) addKeyIdentity(deviceID, moduleID string) (*identity, error) {
	if err := idcheck.ID(deviceID); err != nil {
		return nil, fmt.Errorf("localhub: device id: %w", err)
	}
	if moduleID != "" {
		if err := idcheck.ID(moduleID); err != nil {
			return nil, fmt.Errorf("localhub: module id: %w", err)
		}
	}
	r.mu.Lock()
	name := identityName(deviceID, moduleID)
	if moduleID != "" && r.identities[deviceID] == nil {
		r.mu.Unlock()
		return nil, fmt.Errorf("%w: parent device %q of module %q", ErrUnknownIdentity, deviceID, moduleID)
	}
	if id, ok := r.identities[name]; ok {
		r.mu.Unlock()
		if id.key == "" {
			return nil, fmt.Errorf("%w: %q uses an X.509 certificate", ErrIdentityExists, name)
		}
		return id, nil
	}
	id := &identity{deviceID: deviceID, moduleID: moduleID, key: newKey()}
	r.identities[name] = id
	r.mu.Unlock()
	r.changed()
	return id, nil
}

// addX509Device registers a device authenticated by a new self-signed
// client certificate, or returns the existing one.
func (r *registry) addX509Device(deviceID string) (*identity, error) {
	if err := idcheck.ID(deviceID); err != nil {
		return nil, fmt.Errorf("localhub: device id: %w", err)
	}
	r.mu.Lock()
	existing, ok := r.identities[deviceID]
	r.mu.Unlock()
	if ok {
		if existing.thumbprint == "" || existing.keyPEM == nil {
			return nil, fmt.Errorf("%w: %q does not authenticate by a certificate of the hub's", ErrIdentityExists, deviceID)
		}
		return existing, nil
	}
	// Generate outside the lock: key generation takes a moment.
	kp, err := newClientCert(deviceID)
	if err != nil {
		return nil, err
	}
	id := &identity{deviceID: deviceID, thumbprint: thumbprint(kp.cert.Raw), certPEM: kp.certPEM, keyPEM: kp.keyPEM}
	r.mu.Lock()
	if existing, ok := r.identities[deviceID]; ok { // registered concurrently
		r.mu.Unlock()
		if existing.thumbprint == "" || existing.keyPEM == nil {
			return nil, fmt.Errorf("%w: %q does not authenticate by a certificate of the hub's", ErrIdentityExists, deviceID)
		}
		return existing, nil
	}
	r.identities[deviceID] = id
	r.mu.Unlock()
	r.changed()
	return id, nil
}

func (r *registry) changed() {
	if r.onChange != nil {
		r.onChange()
	}
}

// lookup returns the identity registered as "dev" or "dev/mod".
func (r *registry) lookup(name string) (*identity, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, ok := r.identities[name]
	return id, ok
}

// all returns every identity, devices before their modules, sorted by name.
func (r *registry) all() []*identity {
	r.mu.Lock()
	ids := make([]*identity, 0, len(r.identities))
	for _, id := range r.identities {
		ids = append(ids, id)
	}
	r.mu.Unlock()
	slices.SortFunc(ids, func(a, b *identity) int { return strings.Compare(a.name(), b.name()) })
	return ids
}

// policyKey returns the decoded key of a shared access policy.
func (r *registry) policyKey(name string) ([]byte, bool) {
	if name != ServicePolicy {
		return nil, false
	}
	key, err := sas.DecodeKey(r.serviceKey)
	return key, err == nil
}

// connectionString returns the connection string of a registered identity.
func (r *registry) connectionString(id *identity) string {
	var b strings.Builder
	b.WriteString("HostName=" + r.hostName + ";DeviceId=" + id.deviceID)
	if id.moduleID != "" {
		b.WriteString(";ModuleId=" + id.moduleID)
	}
	if id.key == "" {
		b.WriteString(";x509=true")
	} else {
		b.WriteString(";SharedAccessKey=" + id.key)
	}
	return b.String()
}

// serviceConnectionString returns the iothubowner connection string.
func (r *registry) serviceConnectionString() string {
	return "HostName=" + r.hostName + ";SharedAccessKeyName=" + ServicePolicy + ";SharedAccessKey=" + r.serviceKey
}

// authenticateToken checks a SAS token presented to connect as an
// identity: signed by the identity's own key, or by a policy key when skn
// names a policy, covering the identity's resource and not expired. It
// returns the token's expiry. Errors wrap ErrUnauthorized and say why
// without echoing the token.
func (r *registry) authenticateToken(id *identity, token string, now time.Time) (time.Time, error) {
	t, err := sastoken.Parse(token)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	if t.KeyName != "" {
		key, ok := r.policyKey(t.KeyName)
		if !ok {
			return time.Time{}, fmt.Errorf("%w: unknown policy %q", ErrUnauthorized, t.KeyName)
		}
		if err := t.Verify(key, now); err != nil {
			return time.Time{}, fmt.Errorf("%w: %w", ErrUnauthorized, err)
		}
	} else {
		if id.key == "" {
			return time.Time{}, fmt.Errorf("%w: %q authenticates with a certificate", ErrUnauthorized, id.name())
		}
		if err := verifyWithKeys(t, now, id.key, id.secondaryKey); err != nil {
			return time.Time{}, err
		}
	}
	if !t.Covers(sas.Resource(r.hostName, id.deviceID, id.moduleID)) {
		return time.Time{}, fmt.Errorf("%w: %w", ErrUnauthorized, sas.ErrWrongResource)
	}
	return t.Expiry, nil
}

// verifyWithKeys checks a token signed by the primary or the secondary
// key (which may be empty) of an identity.
func verifyWithKeys(t *sastoken.Token, now time.Time, primary, secondary string) error {
	var err error
	for _, k := range []string{primary, secondary} {
		if k == "" {
			continue
		}
		key, decodeErr := sas.DecodeKey(k)
		if decodeErr != nil {
			return fmt.Errorf("%w: %w", ErrUnauthorized, decodeErr)
		}
		if err = t.Verify(key, now); err == nil {
			return nil
		}
	}
	return fmt.Errorf("%w: %w", ErrUnauthorized, err)
}

// authenticateCertificate checks that an X.509 device presented the
// certificate registered for it (by thumbprint) or one that chains to its
// certificate authority and names it. chain is the TLS client
// certificate chain, leaf first.
func (r *registry) authenticateCertificate(id *identity, chain certChain, now time.Time) error {
	leafDER := chain.leaf()
	switch {
	case !id.usesCertificate():
		return fmt.Errorf("%w: %q authenticates with a key, not a certificate", ErrUnauthorized, id.name())
	case leafDER == nil:
		return fmt.Errorf("%w: no client certificate presented", ErrUnauthorized)
	case id.thumbprint != "":
		tp := thumbprint(leafDER)
		if !strings.EqualFold(tp, id.thumbprint) && (id.secondaryThumbprint == "" || !strings.EqualFold(tp, id.secondaryThumbprint)) {
			return fmt.Errorf("%w: client certificate thumbprint not registered for %q", ErrUnauthorized, id.name())
		}
		return nil
	}
	leaf, err := verifyChain(chain, id.caCerts, now)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	if leaf.Subject.CommonName != id.deviceID {
		return fmt.Errorf("%w: the certificate's CN is not %q", ErrUnauthorized, id.deviceID)
	}
	return nil
}

// authorizeService checks a service token (the REST Authorization header):
// signed by a policy key and covering target, a decoded resource URI.
func (r *registry) authorizeService(token, target string, now time.Time) error {
	if token == "" {
		return fmt.Errorf("%w: no Authorization header", ErrUnauthorized)
	}
	t, err := sastoken.Parse(token)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	if t.KeyName == "" {
		return fmt.Errorf("%w: not signed with a policy key", ErrUnauthorized)
	}
	key, ok := r.policyKey(t.KeyName)
	if !ok {
		return fmt.Errorf("%w: unknown policy %q", ErrUnauthorized, t.KeyName)
	}
	if err := t.Verify(key, now); err != nil {
		return fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	if !t.Covers(target) {
		return fmt.Errorf("%w: %w", ErrUnauthorized, sas.ErrWrongResource)
	}
	return nil
}

// Identities returns the registered identities ("dev" or "dev/mod"), sorted.
func (h *Hub) Identities() []string {
	var names []string
	for _, id := range h.reg.all() {
		names = append(names, id.name())
	}
	return names
}
