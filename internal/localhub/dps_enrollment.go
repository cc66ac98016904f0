package localhub

import (
	"cmp"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/directmethods/iotdevice/internal/idcheck"
	"github.com/directmethods/iotdevice/sas"
)

// An enrollment of the Device Provisioning Service, as its service API
// carries it: an individual enrollment (PUT /enrollments/{registrationId})
// or an enrollment group (PUT /enrollmentGroups/{enrollmentGroupId}). The
// fields are those of the DPS REST reference (api-version 2021-10-01) and
// of the Node.js service SDK's IndividualEnrollment and EnrollmentGroup
// (azure-iot-provisioning-service, interfaces.ts).
type enrollmentDoc struct {
	RegistrationID             string                 `json:"registrationId,omitempty"`
	EnrollmentGroupID          string                 `json:"enrollmentGroupId,omitempty"`
	DeviceID                   string                 `json:"deviceId,omitempty"`
	RegistrationState          *registrationStateJSON `json:"registrationState,omitempty"`
	Attestation                *attestationJSON       `json:"attestation"`
	Capabilities               json.RawMessage        `json:"capabilities,omitempty"`
	IoTHubHostName             string                 `json:"iotHubHostName,omitempty"`
	InitialTwin                json.RawMessage        `json:"initialTwin,omitempty"`
	ETag                       string                 `json:"etag,omitempty"`
	ProvisioningStatus         string                 `json:"provisioningStatus,omitempty"`
	ReprovisionPolicy          json.RawMessage        `json:"reprovisionPolicy,omitempty"`
	CreatedDateTimeUTC         string                 `json:"createdDateTimeUtc,omitempty"`
	LastUpdatedDateTimeUTC     string                 `json:"lastUpdatedDateTimeUtc,omitempty"`
	AllocationPolicy           string                 `json:"allocationPolicy,omitempty"`
	IoTHubs                    []string               `json:"iotHubs,omitempty"`
	CustomAllocationDefinition *customAllocationJSON  `json:"customAllocationDefinition,omitempty"`
}

// attestationJSON is an enrollment's attestation mechanism.
type attestationJSON struct {
	Type         string               `json:"type"`
	SymmetricKey *symmetricKeyJSON    `json:"symmetricKey,omitempty"`
	X509         *x509AttestationJSON `json:"x509,omitempty"`
	TPM          json.RawMessage      `json:"tpm,omitempty"`
}

type symmetricKeyJSON struct {
	PrimaryKey   string `json:"primaryKey,omitempty"`
	SecondaryKey string `json:"secondaryKey,omitempty"`
}

type x509AttestationJSON struct {
	ClientCertificates  *x509CertificatesJSON `json:"clientCertificates,omitempty"`
	SigningCertificates *x509CertificatesJSON `json:"signingCertificates,omitempty"`
	CAReferences        json.RawMessage       `json:"caReferences,omitempty"`
}

type x509CertificatesJSON struct {
	Primary   *x509CertificateJSON `json:"primary,omitempty"`
	Secondary *x509CertificateJSON `json:"secondary,omitempty"`
}

// x509CertificateJSON is a certificate as the service API takes it
// (certificate) and gives it back (info only).
type x509CertificateJSON struct {
	Certificate string                   `json:"certificate,omitempty"`
	Info        *x509CertificateInfoJSON `json:"info,omitempty"`
}

type x509CertificateInfoJSON struct {
	SubjectName      string `json:"subjectName"`
	SHA1Thumbprint   string `json:"sha1Thumbprint"`
	SHA256Thumbprint string `json:"sha256Thumbprint"`
	IssuerName       string `json:"issuerName"`
	NotBeforeUTC     string `json:"notBeforeUtc"`
	NotAfterUTC      string `json:"notAfterUtc"`
	SerialNumber     string `json:"serialNumber"`
	Version          int    `json:"version"`
}

// customAllocationJSON names a custom allocation policy's webhook.
type customAllocationJSON struct {
	WebhookURL string `json:"webhookUrl"`
	APIVersion string `json:"apiVersion"`
}

// Attestation types and provisioning statuses of the service API.
const (
	attestationSymmetricKey = "symmetricKey"
	attestationX509         = "x509"
	provisioningEnabled     = "enabled"
	provisioningDisabled    = "disabled"
	allocationCustom        = "custom"
)

// DPS generates 64-byte keys for symmetric-key enrollments, as the group
// key of the "Symmetric key attestation" page shows; keys given must be
// base64 of 16 to 64 bytes, IoT Hub's bounds for symmetric keys.
const (
	enrollmentKeyBytes = 64
	minKeyBytes        = 16
	maxKeyBytes        = 64
)

// enrollment is a validated enrollment: the document as stored, with the
// certificates it names parsed and its keys decoded. It is never changed
// once stored; an update replaces it.
type enrollment struct {
	doc   enrollmentDoc // with certificates, without registrationState
	group bool
	keys  []string            // base64 symmetric keys, primary first
	certs []*x509.Certificate // client (individual) or signing (group) certificates, primary first
}

// id is the enrollment's registration id or enrollment group id.
func (e *enrollment) id() string {
	if e.group {
		return e.doc.EnrollmentGroupID
	}
	return e.doc.RegistrationID
}

// kind names the enrollment's kind in messages.
func (e *enrollment) kind() string {
	if e.group {
		return "enrollment group"
	}
	return "enrollment"
}

func (e *enrollment) disabled() bool { return e.doc.ProvisioningStatus == provisioningDisabled }

func (e *enrollment) symmetricKey() bool { return e.doc.Attestation.Type == attestationSymmetricKey }

// deviceID is the device id an individual enrollment assigns.
func (e *enrollment) deviceID() string { return cmp.Or(e.doc.DeviceID, e.doc.RegistrationID) }

// errBadEnrollment wraps every reason decodeEnrollment refuses a body;
// its text starts the message of the service API's 400.
var errBadEnrollment = errors.New("invalid enrollment")

// decodeEnrollment parses and validates the body of a PUT of an
// enrollment (group true: an enrollment group) named pathID, and fills
// what DPS fills: missing symmetric keys, the provisioning status. The
// server's fields in the body (etag, times, registration state) are
// ignored. hostName is the only IoT hub the enrollment may name.
func decodeEnrollment(body []byte, group bool, pathID, hostName string) (*enrollment, error) {
	var doc enrollmentDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("%w: the body is not a JSON enrollment: %s", errBadEnrollment, clip(err.Error()))
	}
	doc.ETag, doc.CreatedDateTimeUTC, doc.LastUpdatedDateTimeUTC, doc.RegistrationState = "", "", "", nil
	e := &enrollment{group: group}
	idField, id := "registrationId", &doc.RegistrationID
	if group {
		idField, id = "enrollmentGroupId", &doc.EnrollmentGroupID
		if doc.RegistrationID != "" || doc.DeviceID != "" {
			return nil, fmt.Errorf("%w: an enrollment group has no registrationId or deviceId", errBadEnrollment)
		}
	} else if doc.EnrollmentGroupID != "" {
		return nil, fmt.Errorf("%w: an individual enrollment has no enrollmentGroupId", errBadEnrollment)
	}
	switch {
	case *id == "":
		*id = pathID
	case !strings.EqualFold(*id, pathID):
		return nil, fmt.Errorf("%w: %s %q is not the one in the path, %q", errBadEnrollment, idField, clip(*id), clip(pathID))
	}
	if err := validateRegistrationID(*id); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", errBadEnrollment, idField, err)
	}
	if doc.DeviceID != "" {
		if err := idcheck.ID(doc.DeviceID); err != nil {
			return nil, fmt.Errorf("%w: deviceId: %w", errBadEnrollment, err)
		}
	}
	switch doc.ProvisioningStatus {
	case "":
		doc.ProvisioningStatus = provisioningEnabled
	case provisioningEnabled, provisioningDisabled:
	default:
		return nil, fmt.Errorf("%w: provisioningStatus must be %q or %q", errBadEnrollment, provisioningEnabled, provisioningDisabled)
	}
	if err := validateHubs(&doc, hostName); err != nil {
		return nil, err
	}
	if err := e.decodeAttestation(&doc); err != nil {
		return nil, err
	}
	e.doc = doc
	return e, nil
}

// validateRegistrationID checks a registration or enrollment group id as
// DPS does: 1 to 128 characters, letters, digits, '.', '_' and '-', with
// no special character first or last (DPS REST reference, Runtime
// Registration - Register Device, registrationId). DPS compares them
// without regard to case.
func validateRegistrationID(id string) error {
	if id == "" || len(id) > 128 {
		return errors.New("must be 1 to 128 characters")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (c != '.' && c != '_' && c != '-' || i == 0 || i == len(id)-1) {
			return fmt.Errorf("has the invalid character %q at %d", c, i)
		}
	}
	return nil
}

// validateHubs checks the IoT hubs and allocation policy an enrollment
// names: the hub is the only IoT hub linked to its DPS.
func validateHubs(doc *enrollmentDoc, hostName string) error {
	if doc.IoTHubHostName != "" && !strings.EqualFold(doc.IoTHubHostName, hostName) {
		return fmt.Errorf("%w: iotHubHostName %q is not an IoT hub linked to this DPS (%s)", errBadEnrollment, clip(doc.IoTHubHostName), hostName)
	}
	for _, hub := range doc.IoTHubs {
		if !strings.EqualFold(hub, hostName) {
			return fmt.Errorf("%w: iotHubs names %q, which is not linked to this DPS (%s)", errBadEnrollment, clip(hub), hostName)
		}
	}
	switch doc.AllocationPolicy {
	case "", "hashed", "geoLatency", "static":
		if doc.CustomAllocationDefinition != nil {
			return fmt.Errorf("%w: customAllocationDefinition needs allocationPolicy %q", errBadEnrollment, allocationCustom)
		}
	case allocationCustom:
		c := doc.CustomAllocationDefinition
		if c == nil || c.WebhookURL == "" || c.APIVersion == "" {
			return fmt.Errorf("%w: allocationPolicy custom needs customAllocationDefinition with webhookUrl and apiVersion", errBadEnrollment)
		}
		if err := validateWebhookURL(c.WebhookURL); err != nil {
			return fmt.Errorf("%w: customAllocationDefinition.webhookUrl: %w", errBadEnrollment, err)
		}
	default:
		return fmt.Errorf("%w: allocationPolicy must be hashed, geoLatency, static or custom", errBadEnrollment)
	}
	return nil
}

// validateWebhookURL accepts an https URL, as DPS calls Azure Functions,
// and, the hub being local, an http URL to a loopback address.
func validateWebhookURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return errors.New("not an absolute URL")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() || strings.EqualFold(host, "localhost") {
			return nil
		}
		return errors.New("http is allowed only to a loopback address; use https")
	}
	return errors.New("the scheme must be https")
}

// decodeAttestation validates doc's attestation, generates missing
// symmetric keys and parses certificates.
func (e *enrollment) decodeAttestation(doc *enrollmentDoc) error {
	a := doc.Attestation
	if a == nil {
		return fmt.Errorf("%w: attestation is required", errBadEnrollment)
	}
	switch a.Type {
	case attestationSymmetricKey:
		if a.X509 != nil || len(a.TPM) > 0 {
			return fmt.Errorf("%w: a symmetricKey attestation has no x509 or tpm", errBadEnrollment)
		}
		if a.SymmetricKey == nil {
			a.SymmetricKey = &symmetricKeyJSON{}
		}
		keys := []*string{&a.SymmetricKey.PrimaryKey, &a.SymmetricKey.SecondaryKey}
		for i, k := range keys {
			if *k == "" {
				*k = newEnrollmentKey()
			}
			b, err := sas.DecodeKey(*k)
			if err != nil || len(b) < minKeyBytes || len(b) > maxKeyBytes {
				return fmt.Errorf("%w: attestation.symmetricKey.%s must be base64 of %d to %d bytes", errBadEnrollment, []string{"primaryKey", "secondaryKey"}[i], minKeyBytes, maxKeyBytes)
			}
			e.keys = append(e.keys, *k)
		}
	case attestationX509:
		if a.SymmetricKey != nil || len(a.TPM) > 0 || a.X509 == nil {
			return fmt.Errorf("%w: an x509 attestation has x509 only", errBadEnrollment)
		}
		if len(a.X509.CAReferences) > 0 {
			return fmt.Errorf("%w: x509.caReferences (certificates verified in DPS) are not supported by the local hub; give the certificate itself", errBadEnrollment)
		}
		certs, field := a.X509.ClientCertificates, "clientCertificates"
		other := a.X509.SigningCertificates
		if e.group {
			certs, field, other = a.X509.SigningCertificates, "signingCertificates", a.X509.ClientCertificates
		}
		if other != nil {
			return fmt.Errorf("%w: an %s's x509 attestation takes %s only", errBadEnrollment, e.kind(), field)
		}
		if certs == nil || certs.Primary == nil {
			return fmt.Errorf("%w: x509.%s.primary.certificate is required", errBadEnrollment, field)
		}
		for i, c := range []*x509CertificateJSON{certs.Primary, certs.Secondary} {
			if c == nil {
				continue
			}
			cert, err := parseEnrollmentCertificate(c.Certificate)
			if err != nil {
				return fmt.Errorf("%w: x509.%s.%s.certificate: %w", errBadEnrollment, field, []string{"primary", "secondary"}[i], err)
			}
			c.Info = nil
			e.certs = append(e.certs, cert)
		}
	case "tpm":
		return fmt.Errorf("%w: TPM attestation is not supported by the local hub", errBadEnrollment)
	default:
		return fmt.Errorf("%w: attestation.type must be symmetricKey or x509", errBadEnrollment)
	}
	return nil
}

// newEnrollmentKey returns a random key as DPS generates them.
func newEnrollmentKey() string {
	b := make([]byte, enrollmentKeyBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.StdEncoding.EncodeToString(b)
}

// parseEnrollmentCertificate reads a certificate given to the service
// API: PEM, or base64 of PEM or of DER (the C service SDK sends base64 of
// the PEM, Azure/azure-iot-sdk-c issue #1844).
func parseEnrollmentCertificate(s string) (*x509.Certificate, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("empty")
	}
	data := []byte(s)
	if !strings.HasPrefix(s, "-----") {
		decoded, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, errors.New("neither PEM nor base64")
		}
		data = decoded
	}
	if block, _ := pem.Decode(data); block != nil {
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("a PEM %q, not a CERTIFICATE", clip(block.Type))
		}
		data = block.Bytes
	}
	cert, err := x509.ParseCertificate(data)
	if err != nil {
		return nil, fmt.Errorf("not an X.509 certificate: %w", err)
	}
	return cert, nil
}

// certificateInfo describes a certificate as the service API does.
func certificateInfo(c *x509.Certificate) *x509CertificateInfoJSON {
	sha1Sum := sha1.Sum(c.Raw)
	sha256Sum := sha256.Sum256(c.Raw)
	return &x509CertificateInfoJSON{
		SubjectName:      c.Subject.String(),
		SHA1Thumbprint:   strings.ToUpper(hex.EncodeToString(sha1Sum[:])),
		SHA256Thumbprint: strings.ToUpper(hex.EncodeToString(sha256Sum[:])),
		IssuerName:       c.Issuer.String(),
		NotBeforeUTC:     c.NotBefore.UTC().Format(time.RFC3339),
		NotAfterUTC:      c.NotAfter.UTC().Format(time.RFC3339),
		SerialNumber:     strings.ToUpper(c.SerialNumber.Text(16)),
		Version:          c.Version,
	}
}

// view returns the enrollment as the service API gives it back: the
// certificates' info in place of the certificates, and the registration
// state of an individual enrollment's device, if it has registered.
func (e *enrollment) view(state *registrationStateJSON) enrollmentDoc {
	doc := e.doc
	a := *doc.Attestation
	doc.Attestation = &a
	if a.X509 != nil {
		x := *a.X509
		a.X509 = &x
		certs := x.ClientCertificates
		if e.group {
			certs = x.SigningCertificates
		}
		out := &x509CertificatesJSON{Primary: &x509CertificateJSON{Info: certificateInfo(e.certs[0])}}
		if len(e.certs) > 1 {
			out.Secondary = &x509CertificateJSON{Info: certificateInfo(e.certs[1])}
		}
		if certs != nil {
			if e.group {
				x.SigningCertificates = out
			} else {
				x.ClientCertificates = out
			}
		}
	}
	if !e.group {
		doc.RegistrationState = state
	}
	return doc
}
