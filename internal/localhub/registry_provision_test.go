package localhub

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"
)

// TestProvisionedIdentities connects devices that DPS would create:
// symmetric keys (primary or secondary), and certificates trusted by
// thumbprint or by certificate authority.
func TestProvisionedIdentities(t *testing.T) {
	t.Parallel()
	h := startHub(t, Options{})
	ca, _ := NewDeviceCA("group CA")
	otherCA, _ := NewDeviceCA("other CA")
	caCert := parseCA(t, ca)
	good, _ := ca.Issue("ca-dev")
	wrongCN, _ := ca.Issue("someone-else")
	stranger, _ := otherCA.Issue("ca-dev")
	primary, _, _ := NewSelfSignedCertificate("tp-dev")
	secondary, _, _ := NewSelfSignedCertificate("tp-dev")
	unknown, _, _ := NewSelfSignedCertificate("tp-dev")
	keyA, keyB := newKey(), newKey()
	for id, cred := range map[string]deviceCredential{
		"key-dev": {primaryKey: keyA, secondaryKey: keyB},
		"tp-dev":  {primaryThumbprint: thumbprint(primary.Certificate[0]), secondaryThumbprint: thumbprint(secondary.Certificate[0])},
		"ca-dev":  {caCerts: []*x509.Certificate{caCert}},
	} {
		if _, err := h.reg.provision(id, cred); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.reg.provision("both", deviceCredential{primaryKey: keyA, caCerts: []*x509.Certificate{caCert}}); err == nil {
		t.Error("provision took two kinds of credential")
	}
	tests := []struct {
		name, deviceID, key string
		cert                *tls.Certificate
		want                byte
	}{
		{"primary key", "key-dev", keyA, nil, connackAccepted},
		{"secondary key", "key-dev", keyB, nil, connackAccepted},
		{"another key", "key-dev", newKey(), nil, connackNotAuthorized},
		{"primary thumbprint", "tp-dev", "", &primary, connackAccepted},
		{"secondary thumbprint", "tp-dev", "", &secondary, connackAccepted},
		{"unknown thumbprint", "tp-dev", "", &unknown, connackNotAuthorized},
		{"signed by the CA", "ca-dev", "", &good, connackAccepted},
		{"signed by the CA for another id", "ca-dev", "", &wrongCN, connackNotAuthorized},
		{"signed by another CA", "ca-dev", "", &stranger, connackNotAuthorized},
		{"no certificate", "ca-dev", "", nil, connackNotAuthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, h, tt.cert)
			password := ""
			if tt.key != "" {
				password = deviceToken(t, "HostName=localhost;DeviceId="+tt.deviceID+";SharedAccessKey="+tt.key, time.Now().Add(time.Hour))
			}
			c.write(t, connectPacket(h.HostName(), tt.deviceID, password, true))
			if got := connackCode(t, c); got != tt.want {
				t.Errorf("CONNACK %d, want %d", got, tt.want)
			}
		})
	}
	if got := h.twinDocument(mustLookup(t, h, "ca-dev")).AuthenticationType; got != "certificateAuthority" {
		t.Errorf("twin authenticationType %q, want certificateAuthority", got)
	}
}

func parseCA(t testing.TB, ca *DeviceCA) *x509.Certificate {
	t.Helper()
	certs, err := parseCertificatesPEM([]string{string(ca.CertPEM())})
	if err != nil || len(certs) != 1 {
		t.Fatalf("parse the CA: %v", err)
	}
	return certs[0]
}

func mustLookup(t testing.TB, h *Hub, name string) *identity {
	t.Helper()
	id, ok := h.reg.lookup(name)
	if !ok {
		t.Fatalf("%s not registered", name)
	}
	return id
}

// TestProvisionedIdentitiesPersist keeps provisioned credentials across a
// restart.
func TestProvisionedIdentitiesPersist(t *testing.T) {
	dir := t.TempDir()
	h, err := Start(t.Context(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := NewDeviceCA("group CA")
	cert, _ := ca.Issue("ca-dev")
	keyA, keyB := newKey(), newKey()
	if _, err := h.reg.provision("ca-dev", deviceCredential{caCerts: []*x509.Certificate{parseCA(t, ca)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.reg.provision("key-dev", deviceCredential{primaryKey: keyA, secondaryKey: keyB}); err != nil {
		t.Fatal(err)
	}
	h.Close()
	h2 := startHub(t, Options{Dir: dir})
	for _, c := range []struct {
		id, key string
		cert    *tls.Certificate
	}{{"ca-dev", "", &cert}, {"key-dev", keyB, nil}} {
		raw := dialRaw(t, h2, c.cert)
		password := ""
		if c.key != "" {
			password = deviceToken(t, "HostName=localhost;DeviceId="+c.id+";SharedAccessKey="+c.key, time.Now().Add(time.Hour))
		}
		raw.write(t, connectPacket(h2.HostName(), c.id, password, true))
		if got := connackCode(t, raw); got != connackAccepted {
			t.Errorf("%s after a restart: CONNACK %d", c.id, got)
		}
	}
}
