package localhub

import (
	"encoding/json"
	"fmt"
	"time"
)

// ErrInvalidEnrollment reports an enrollment the service API would
// refuse (400).
var ErrInvalidEnrollment = errBadEnrollment

// EnrollmentSpec describes an enrollment of the hub's Device Provisioning
// Service, for PutEnrollment and PutEnrollmentGroup. Without a
// certificate, the enrollment attests devices by symmetric key.
type EnrollmentSpec struct {
	// PrimaryKey and SecondaryKey are base64 symmetric keys; those left
	// empty are generated, as DPS generates them.
	PrimaryKey, SecondaryKey string
	// CertificatePEM makes it an X.509 enrollment: an individual
	// enrollment's device certificate (whose CN is the registration id),
	// or a group's signing certificate, a CA its devices' certificates
	// chain to.
	CertificatePEM []byte
	// DeviceID is the device id an individual enrollment assigns;
	// default: the registration id. Groups assign the registration id.
	DeviceID string
	// Disabled makes the enrollment's provisioningStatus "disabled": its
	// devices are refused (401).
	Disabled bool
	// WebhookURL, when set, makes the allocation policy custom: DPS calls
	// this webhook with each registration and returns its payload to the
	// device. https, or http to a loopback address.
	WebhookURL string
}

// Enrollment is an enrollment as the hub's DPS stores it.
type Enrollment struct {
	ID                       string // registration id, or enrollment group id
	Group                    bool
	PrimaryKey, SecondaryKey string // of a symmetric-key enrollment
	X509                     bool   // attests by certificate
	DeviceID                 string // of an individual enrollment
	Disabled                 bool
	ETag                     string
}

// PutEnrollment creates or replaces the individual enrollment of
// registrationID, as PUT /enrollments/{registrationId} does.
func (h *Hub) PutEnrollment(registrationID string, spec EnrollmentSpec) (Enrollment, error) {
	return h.dps.putSpec(false, registrationID, spec)
}

// PutEnrollmentGroup creates or replaces the enrollment group groupID, as
// PUT /enrollmentGroups/{enrollmentGroupId} does.
func (h *Hub) PutEnrollmentGroup(groupID string, spec EnrollmentSpec) (Enrollment, error) {
	return h.dps.putSpec(true, groupID, spec)
}

// LookupEnrollment returns the individual enrollment of registrationID
// (group false) or the enrollment group groupID (group true).
func (h *Hub) LookupEnrollment(group bool, id string) (Enrollment, bool) {
	e, ok := h.dps.enrollmentByID(group, id)
	if !ok {
		return Enrollment{}, false
	}
	return e.summary(), true
}

// DeleteEnrollment deletes an individual enrollment (group false) or an
// enrollment group; the devices it provisioned stay in the hub.
func (h *Hub) DeleteEnrollment(group bool, id string) error {
	if e := h.dps.deleteEnrollment(group, id, ""); e != nil {
		return fmt.Errorf("localhub: delete %q: %s", id, e.message)
	}
	return nil
}

// putSpec stores the enrollment a spec describes, through the service
// API's validation.
func (d *dps) putSpec(group bool, id string, spec EnrollmentSpec) (Enrollment, error) {
	doc := enrollmentDoc{DeviceID: spec.DeviceID, ProvisioningStatus: provisioningEnabled}
	if spec.Disabled {
		doc.ProvisioningStatus = provisioningDisabled
	}
	if len(spec.CertificatePEM) > 0 {
		certs := &x509CertificatesJSON{Primary: &x509CertificateJSON{Certificate: string(spec.CertificatePEM)}}
		doc.Attestation = &attestationJSON{Type: attestationX509, X509: &x509AttestationJSON{ClientCertificates: certs}}
		if group {
			doc.Attestation.X509 = &x509AttestationJSON{SigningCertificates: certs}
		}
	} else {
		doc.Attestation = &attestationJSON{Type: attestationSymmetricKey,
			SymmetricKey: &symmetricKeyJSON{PrimaryKey: spec.PrimaryKey, SecondaryKey: spec.SecondaryKey}}
	}
	if spec.WebhookURL != "" {
		doc.AllocationPolicy = allocationCustom
		doc.CustomAllocationDefinition = &customAllocationJSON{WebhookURL: spec.WebhookURL, APIVersion: "2021-10-01"}
	}
	body, err := json.Marshal(doc)
	if err != nil {
		return Enrollment{}, fmt.Errorf("localhub: encode enrollment: %w", err)
	}
	e, err := decodeEnrollment(body, group, id, d.hostName)
	if err != nil {
		return Enrollment{}, fmt.Errorf("localhub: %w", err)
	}
	if _, rerr := d.storeEnrollment(e, "", time.Now()); rerr != nil {
		return Enrollment{}, fmt.Errorf("localhub: %s", rerr.message)
	}
	return e.summary(), nil
}

// summary describes a stored enrollment.
func (e *enrollment) summary() Enrollment {
	s := Enrollment{ID: e.id(), Group: e.group, X509: !e.symmetricKey(), Disabled: e.disabled(), ETag: e.doc.ETag}
	if !e.group {
		s.DeviceID = e.deviceID()
	}
	if e.symmetricKey() {
		s.PrimaryKey, s.SecondaryKey = e.keys[0], e.keys[1]
	}
	return s
}
