package localhub

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"
)

// certificateLifetime is how long generated certificates stay valid; long
// enough that a persisted hub directory keeps working for years.
const certificateLifetime = 10 * 365 * 24 * time.Hour

// keyPair is a certificate with its private key, in both parsed and PEM form.
type keyPair struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	keyPEM  []byte
}

// tlsCertificate returns the pair as a tls.Certificate.
func (kp *keyPair) tlsCertificate() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{kp.cert.Raw}, PrivateKey: kp.key, Leaf: kp.cert}
}

// newCA creates a self-signed ECDSA P-256 certificate authority.
func newCA(hostName string) (*keyPair, error) {
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "localhub CA " + hostName, Organization: []string{"localhub"}},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	return issue(tmpl, nil)
}

// newServerCert creates a server certificate signed by ca for hostName,
// localhost, 127.0.0.1 and ::1.
func newServerCert(ca *keyPair, hostName string) (*keyPair, error) {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: hostName, Organization: []string{"localhub"}},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if ip := net.ParseIP(hostName); ip != nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	} else if !strings.EqualFold(hostName, "localhost") {
		tmpl.DNSNames = append(tmpl.DNSNames, hostName)
	}
	return issue(tmpl, ca)
}

// newClientCert creates a self-signed client certificate for an X.509
// device; the hub identifies it by thumbprint, not by chain.
func newClientCert(deviceID string) (*keyPair, error) {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: deviceID},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return issue(tmpl, nil)
}

// issue fills in serial, key and validity, and signs tmpl with parent, or
// self-signs it when parent is nil.
func issue(tmpl *x509.Certificate, parent *keyPair) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("localhub: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("localhub: generate serial: %w", err)
	}
	now := time.Now()
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-time.Hour)
	tmpl.NotAfter = now.Add(certificateLifetime)
	signerCert, signerKey := tmpl, key
	if parent != nil {
		signerCert, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &key.PublicKey, signerKey)
	if err != nil {
		return nil, fmt.Errorf("localhub: create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("localhub: parse certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("localhub: marshal key: %w", err)
	}
	return &keyPair{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// parseKeyPair reads a pair back from its PEM form.
func parseKeyPair(certPEM, keyPEM []byte) (*keyPair, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("localhub: load key pair: %w", err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("localhub: load key pair: want an ECDSA key, got %T", pair.PrivateKey)
	}
	return &keyPair{cert: pair.Leaf, key: key, certPEM: certPEM, keyPEM: keyPEM}, nil
}

// thumbprint is the upper-case hex SHA-256 of a certificate's DER bytes, as
// the hub registers X.509 devices.
func thumbprint(der []byte) string {
	sum := sha256.Sum256(der)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// certChain is a TLS peer's certificate chain in DER, leaf first, as the
// peer sent it (unverified).
type certChain [][]byte

// chainOf returns the DER of a handshake's peer certificates, or nil.
func chainOf(certs []*x509.Certificate) certChain {
	if len(certs) == 0 {
		return nil
	}
	chain := make(certChain, len(certs))
	for i, c := range certs {
		chain[i] = c.Raw
	}
	return chain
}

// leaf returns the DER of the leaf certificate, or nil.
func (c certChain) leaf() []byte {
	if len(c) == 0 {
		return nil
	}
	return c[0]
}

// verifyChain verifies that the chain's leaf is a client certificate,
// valid at now, that chains to one of roots through the certificates the
// peer sent after it, and returns the leaf.
func verifyChain(chain certChain, roots []*x509.Certificate, now time.Time) (*x509.Certificate, error) {
	if len(chain) == 0 {
		return nil, errors.New("no client certificate presented")
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return nil, fmt.Errorf("parse the client certificate: %w", err)
	}
	rootPool, intermediates := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		rootPool.AddCert(r)
	}
	for _, der := range chain[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			intermediates.AddCert(c)
		}
	}
	_, err = leaf.Verify(x509.VerifyOptions{
		Roots:         rootPool,
		Intermediates: intermediates,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, fmt.Errorf("the client certificate does not chain to a trusted certificate authority: %w", err)
	}
	return leaf, nil
}

// parseCertificatesPEM parses certificates, each in PEM.
func parseCertificatesPEM(pems []string) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for _, p := range pems {
		block, _ := pem.Decode([]byte(p))
		if block == nil || block.Type != "CERTIFICATE" {
			return nil, errors.New("not a PEM certificate")
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// certificatesPEM writes certificates in PEM, one string each.
func certificatesPEM(certs []*x509.Certificate) []string {
	var pems []string
	for _, c := range certs {
		pems = append(pems, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})))
	}
	return pems
}
