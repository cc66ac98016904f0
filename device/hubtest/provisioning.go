package hubtest

import (
	"crypto/tls"
	"fmt"
	"strings"

	"github.com/directmethods/iotdevice/internal/localhub"
	"github.com/directmethods/iotdevice/sas"
)

// IDScope returns the ID scope of the hub's Device Provisioning Service
// (DPS), which devices present when they register. The hub plays DPS on
// its own ports: a provisioning client connects to HostName on Port(MQTT)
// or Port(MQTTWebSocket), or to HTTPSPort for DPS's HTTPS API, trusting
// CertPool. The hub's enrollments (AddEnrollmentGroup and the like) say
// which devices DPS assigns, always to this hub.
func (h *Hub) IDScope() string { return h.hub.IDScope() }

// ProvisioningServiceConnectionString returns the connection string of
// the DPS service API's provisioningserviceowner policy, for a
// provisioning service SDK of your own.
func (h *Hub) ProvisioningServiceConnectionString() string { return h.hub.DPSConnectionString() }

// EnrollmentOptions configures an enrollment. A nil *EnrollmentOptions,
// and every zero field, means the default.
type EnrollmentOptions struct {
	// PrimaryKey and SecondaryKey are a symmetric-key enrollment's base64
	// keys. Default: new random keys, as DPS generates them.
	PrimaryKey, SecondaryKey string
	// DeviceID is the device id an individual enrollment assigns.
	// Default: the registration id. A group's devices get their
	// registration ids.
	DeviceID string
	// Disabled disables the enrollment: DPS refuses its devices with 401.
	Disabled bool
	// WebhookURL makes the enrollment's allocation policy custom: DPS
	// calls this webhook (https, or http to a loopback address, such as an
	// httptest.Server's) with each registration and the device's payload,
	// and hands the payload it returns to the device.
	WebhookURL string
}

// Enrollment is an individual enrollment or an enrollment group of the
// hub's DPS.
type Enrollment struct {
	hub   *Hub
	group bool
	id    string
	spec  localhub.EnrollmentSpec
	got   localhub.Enrollment
	ca    *localhub.DeviceCA // an X.509 group's signing CA
	cert  *tls.Certificate   // an X.509 individual enrollment's device certificate
}

// AddEnrollmentGroup adds, or replaces, a symmetric-key enrollment group:
// each device derives its key from the group's (DeviceKey).
func (h *Hub) AddEnrollmentGroup(groupID string, opts *EnrollmentOptions) (*Enrollment, error) {
	return h.addEnrollment(true, groupID, opts, nil, nil)
}

// AddEnrollment adds, or replaces, a symmetric-key individual enrollment
// for registrationID.
func (h *Hub) AddEnrollment(registrationID string, opts *EnrollmentOptions) (*Enrollment, error) {
	return h.addEnrollment(false, registrationID, opts, nil, nil)
}

// AddX509EnrollmentGroup adds, or replaces, an X.509 enrollment group
// whose signing certificate is a new CA: its devices present certificates
// the CA issued for their registration ids (Certificate). Once
// provisioned, the hub trusts such a certificate because it chains to the
// CA.
func (h *Hub) AddX509EnrollmentGroup(groupID string, opts *EnrollmentOptions) (*Enrollment, error) {
	ca, err := localhub.NewDeviceCA("hubtest CA " + groupID)
	if err != nil {
		return nil, fmt.Errorf("hubtest: %w", err)
	}
	return h.addEnrollment(true, groupID, opts, ca, nil)
}

// AddX509Enrollment adds, or replaces, an X.509 individual enrollment for
// registrationID with a new self-signed certificate whose CN is
// registrationID (Certificate).
func (h *Hub) AddX509Enrollment(registrationID string, opts *EnrollmentOptions) (*Enrollment, error) {
	cert, pemCert, err := localhub.NewSelfSignedCertificate(registrationID)
	if err != nil {
		return nil, fmt.Errorf("hubtest: %w", err)
	}
	e, err := h.addEnrollment(false, registrationID, opts, nil, pemCert)
	if err != nil {
		return nil, err
	}
	e.cert = &cert
	return e, nil
}

func (h *Hub) addEnrollment(group bool, id string, opts *EnrollmentOptions, ca *localhub.DeviceCA, certPEM []byte) (*Enrollment, error) {
	var o EnrollmentOptions
	if opts != nil {
		o = *opts
	}
	spec := localhub.EnrollmentSpec{PrimaryKey: o.PrimaryKey, SecondaryKey: o.SecondaryKey, DeviceID: o.DeviceID,
		Disabled: o.Disabled, WebhookURL: o.WebhookURL, CertificatePEM: certPEM}
	if ca != nil {
		spec.CertificatePEM = ca.CertPEM()
	}
	e := &Enrollment{hub: h, group: group, id: id, spec: spec, ca: ca}
	if err := e.put(); err != nil {
		return nil, err
	}
	return e, nil
}

// put stores the enrollment as its spec says.
func (e *Enrollment) put() error {
	var err error
	if e.group {
		e.got, err = e.hub.hub.PutEnrollmentGroup(e.id, e.spec)
	} else {
		e.got, err = e.hub.hub.PutEnrollment(e.id, e.spec)
	}
	if err != nil {
		return fmt.Errorf("hubtest: enrollment %q: %w", e.id, err)
	}
	// Keep the keys DPS generated: SetEnabled stores them again.
	e.spec.PrimaryKey, e.spec.SecondaryKey = e.got.PrimaryKey, e.got.SecondaryKey
	return nil
}

// ID is the enrollment's registration id, or its enrollment group id.
func (e *Enrollment) ID() string { return e.id }

// PrimaryKey and SecondaryKey are a symmetric-key enrollment's keys: an
// individual device's own, or the group's from which its devices derive
// theirs. They are empty for X.509 enrollments.
func (e *Enrollment) PrimaryKey() string   { return e.got.PrimaryKey }
func (e *Enrollment) SecondaryKey() string { return e.got.SecondaryKey }

// DeviceKey returns the key a device registering as registrationID signs
// its token with: the individual enrollment's primary key, or the one
// derived from the group's primary key (sas.DeriveDeviceKey).
func (e *Enrollment) DeviceKey(registrationID string) (string, error) {
	switch {
	case e.got.X509:
		return "", fmt.Errorf("hubtest: enrollment %q attests by certificate, not key", e.id)
	case !e.group:
		return e.got.PrimaryKey, nil
	}
	key, err := sas.DeriveDeviceKey(e.got.PrimaryKey, registrationID)
	if err != nil {
		return "", fmt.Errorf("hubtest: %w", err)
	}
	return key, nil
}

// Certificate returns the client certificate a device registering as
// registrationID presents: an X.509 individual enrollment's own (for its
// registration id), or a new one the X.509 group's CA issues for
// registrationID.
func (e *Enrollment) Certificate(registrationID string) (*tls.Certificate, error) {
	switch {
	case e.cert != nil:
		return e.cert, nil
	case e.ca != nil:
		cert, err := e.ca.Issue(registrationID)
		if err != nil {
			return nil, fmt.Errorf("hubtest: %w", err)
		}
		return &cert, nil
	}
	return nil, fmt.Errorf("hubtest: enrollment %q attests by key, not certificate", e.id)
}

// SetEnabled enables or disables the enrollment, as its provisioningStatus
// does: DPS refuses the devices of a disabled one with 401. Devices it
// provisioned stay in the hub.
func (e *Enrollment) SetEnabled(enabled bool) error {
	e.spec.Disabled = !enabled
	return e.put()
}

// Delete deletes the enrollment; the devices it provisioned stay in the
// hub, as DPS leaves them.
func (e *Enrollment) Delete() error {
	if err := e.hub.hub.DeleteEnrollment(e.group, e.id); err != nil {
		return fmt.Errorf("hubtest: %w", err)
	}
	return nil
}

// Device returns the device registered as deviceID, such as one the DPS
// provisioned, to invoke its methods or wait for it to connect. It has the
// connection string the hub gives: with its primary key, or x509=true
// (and no Certificate) for a device that authenticates by certificate.
func (h *Hub) Device(deviceID string) (*Identity, error) {
	if strings.Contains(deviceID, "/") {
		return nil, fmt.Errorf("hubtest: %q is not a device id", deviceID)
	}
	cs, err := h.hub.ConnectionString(deviceID)
	if err != nil {
		return nil, fmt.Errorf("hubtest: %w", err)
	}
	return &Identity{hub: h, deviceID: deviceID, connectionString: cs}, nil
}
