package localhub

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
)

// DeviceCA is a certificate authority that signs device certificates, for
// X.509 enrollment groups in tests: the group's signing certificate is
// CertPEM, and its devices present certificates from Issue.
type DeviceCA struct {
	kp *keyPair
}

// NewDeviceCA creates a new self-signed certificate authority named name.
func NewDeviceCA(name string) (*DeviceCA, error) {
	kp, err := issue(&x509.Certificate{
		Subject:               pkix.Name{CommonName: name, Organization: []string{"localhub device CA"}},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil)
	if err != nil {
		return nil, err
	}
	return &DeviceCA{kp: kp}, nil
}

// CertPEM returns the CA's certificate in PEM.
func (ca *DeviceCA) CertPEM() []byte { return append([]byte(nil), ca.kp.certPEM...) }

// Issue returns a new client certificate for the device or registration
// id cn (its subject CN), signed by the CA, with its key.
func (ca *DeviceCA) Issue(cn string) (tls.Certificate, error) {
	kp, err := issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca.kp)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("localhub: issue a certificate for %q: %w", cn, err)
	}
	return kp.tlsCertificate(), nil
}

// NewSelfSignedCertificate returns a new self-signed client certificate
// whose CN is cn, with its key and its PEM: what an X.509 individual
// enrollment registers.
func NewSelfSignedCertificate(cn string) (tls.Certificate, []byte, error) {
	kp, err := newClientCert(cn)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return kp.tlsCertificate(), append([]byte(nil), kp.certPEM...), nil
}
