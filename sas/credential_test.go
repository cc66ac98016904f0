package sas

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/directmethods/iotdevice/internal/sastoken"
	"github.com/directmethods/iotdevice/internal/secrettest"
)

var (
	_ Credential = (*KeyCredential)(nil)
	_ Credential = (*TokenCredential)(nil)
	_ Credential = TokenFunc(nil)
	_ Credential = (*CertificateCredential)(nil)
)

func TestKeyCredential(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		key := testKeyBytes(t)
		res := Resource(testHost, "dev-01", "fan-ctl")
		cred, err := NewKeyCredential(testKey, "", 10*time.Minute)
		if err != nil {
			t.Fatalf("NewKeyCredential = %v", err)
		}
		if cred.ClientCertificate() != nil {
			t.Errorf("ClientCertificate() is not nil")
		}
		for i := range 3 {
			start := time.Now()
			token, expiry, err := cred.Token(t.Context(), res)
			if err != nil {
				t.Fatalf("Token = %v", err)
			}
			if want := start.Add(10 * time.Minute); !expiry.Equal(want) {
				t.Errorf("token %d expires at %v, want %v", i, expiry, want)
			}
			parsed, err := sastoken.Parse(token)
			if err != nil {
				t.Fatalf("Parse = %v", err)
			}
			if !parsed.Expiry.Equal(expiry) {
				t.Errorf("token se = %v, Token returned %v", parsed.Expiry, expiry)
			}
			if err := parsed.Verify(key, time.Now()); err != nil {
				t.Errorf("Verify = %v", err)
			}
			if !parsed.Covers(res) || parsed.KeyName != "" {
				t.Errorf("token for %q with key name %q; want %q and none", parsed.Resource, parsed.KeyName, res)
			}
			time.Sleep(7 * time.Minute) // fake time: the next token is a new one
		}
	})
}

func TestKeyCredentialLifetime(t *testing.T) {
	tests := []struct {
		name     string
		lifetime time.Duration
		want     time.Duration
	}{
		{"default", 0, DefaultTokenLifetime},
		{"whole seconds", 90 * time.Second, 90 * time.Second},
		{"rounded up to a second", 90*time.Second + time.Millisecond, 91 * time.Second},
		{"a day", 24 * time.Hour, 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cred, err := NewKeyCredential(testKey, "", tt.lifetime)
				if err != nil {
					t.Fatal(err)
				}
				_, expiry, err := cred.Token(t.Context(), testHost)
				if err != nil {
					t.Fatal(err)
				}
				if got := time.Until(expiry); got != tt.want {
					t.Errorf("token lives %v, want %v", got, tt.want)
				}
			})
		})
	}
}

func TestKeyCredentialPolicy(t *testing.T) {
	cred, err := NewKeyCredential(testKey, "iothubowner", 0)
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := cred.Token(t.Context(), Resource(testHost, "dev-01", ""))
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := sastoken.Parse(token)
	if err != nil {
		t.Fatal(err)
	}
	if parsed.KeyName != "iothubowner" {
		t.Errorf("key name = %q, want iothubowner", parsed.KeyName)
	}
	if err := parsed.Verify(testKeyBytes(t), time.Now()); err != nil {
		t.Errorf("Verify = %v", err)
	}
}

func TestNewKeyCredentialErrors(t *testing.T) {
	if _, err := NewKeyCredential(testKey, "", -time.Second); err == nil || !strings.Contains(err.Error(), "negative") {
		t.Errorf("negative lifetime: err = %v", err)
	}
	for _, key := range []string{"", "not base64!", strings.TrimRight(testKey, "=")} {
		cred, err := NewKeyCredential(key, "", time.Hour)
		if !errors.Is(err, ErrInvalidKey) || cred != nil {
			t.Errorf("NewKeyCredential(%q) = %v, %v; want ErrInvalidKey", key, cred, err)
		}
		if err != nil && key != "" && strings.Contains(err.Error(), key) {
			t.Errorf("error %q shows the key", err)
		}
	}
}

func TestTokenCredential(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		key := testKeyBytes(t)
		dev := Resource(testHost, "dev-01", "")
		expiry := time.Now().Add(time.Hour)
		token := Sign(key, dev, "", expiry)
		sig := mustUnescape(t, fields(t, token)["sig"])
		cred, err := NewTokenCredential(token)
		if err != nil {
			t.Fatalf("NewTokenCredential = %v", err)
		}
		if cred.ClientCertificate() != nil {
			t.Errorf("ClientCertificate() is not nil")
		}

		for _, res := range []string{dev, Resource(testHost, "dev-01", "fan-ctl"), "amqps://" + dev} {
			got, gotExpiry, err := cred.Token(t.Context(), res)
			if err != nil || got != token || !gotExpiry.Equal(expiry) {
				t.Errorf("Token(%q) = %q, %v, %v; want the fixed token, %v", res, got, gotExpiry, err, expiry)
			}
		}
		for _, res := range []string{Resource(testHost, "dev-02", ""), Resource(testHost, "dev-0", ""), Resource("otherhub.example", "dev-01", ""), testHost} {
			got, _, err := cred.Token(t.Context(), res)
			if !errors.Is(err, ErrWrongResource) || got != "" {
				t.Errorf("Token(%q) = %q, %v; want ErrWrongResource", res, got, err)
			}
			if err != nil {
				assertNoSecret(t, "error", err.Error(), sig, escapeSig(sig))
			}
		}

		time.Sleep(time.Hour - time.Second)
		if _, _, err := cred.Token(t.Context(), dev); err != nil {
			t.Errorf("a second before expiry: Token = %v", err)
		}
		time.Sleep(time.Second)
		got, gotExpiry, err := cred.Token(t.Context(), dev)
		if !errors.Is(err, ErrTokenExpired) || got != "" || !gotExpiry.IsZero() {
			t.Errorf("at expiry: Token = %q, %v, %v; want ErrTokenExpired", got, gotExpiry, err)
		}
		if err != nil {
			assertNoSecret(t, "error", err.Error(), sig, escapeSig(sig))
		}
	})
}

func escapeSig(s string) string {
	return strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(s)
}

func TestNewTokenCredentialMalformed(t *testing.T) {
	cred, err := NewTokenCredential(strings.TrimPrefix(wantDeviceToken, "SharedAccessSignature "))
	if !errors.Is(err, ErrMalformedToken) || cred != nil {
		t.Errorf("NewTokenCredential = %v, %v; want ErrMalformedToken", cred, err)
	}
}

func TestTokenFunc(t *testing.T) {
	type ctxKey struct{}
	expiry := time.Unix(testExpiry, 0)
	failure := errors.New("signing service unavailable")
	var gotResource string
	var gotValue any
	f := TokenFunc(func(ctx context.Context, resource string) (string, time.Time, error) {
		gotResource, gotValue = resource, ctx.Value(ctxKey{})
		if resource == "fail" {
			return "", time.Time{}, failure
		}
		return "token-for-" + resource, expiry, nil
	})
	var cred Credential = f
	ctx := context.WithValue(t.Context(), ctxKey{}, "v")
	token, gotExpiry, err := cred.Token(ctx, "h/devices/d")
	if err != nil || token != "token-for-h/devices/d" || !gotExpiry.Equal(expiry) {
		t.Errorf("Token = %q, %v, %v", token, gotExpiry, err)
	}
	if gotResource != "h/devices/d" || gotValue != "v" {
		t.Errorf("the function saw resource %q and context value %v", gotResource, gotValue)
	}
	if _, _, err := cred.Token(ctx, "fail"); !errors.Is(err, failure) {
		t.Errorf("Token = %v, want the function's error", err)
	}
	if cred.ClientCertificate() != nil {
		t.Errorf("ClientCertificate() is not nil")
	}
}

// testCertificate returns a self-signed certificate and its key.
func testCertificate(t *testing.T) (tls.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "dev-01"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, key
}

func TestCertificateCredential(t *testing.T) {
	cert, _ := testCertificate(t)
	tests := []struct {
		name string
		cert tls.Certificate
	}{
		{"empty", tls.Certificate{}},
		{"no private key", tls.Certificate{Certificate: cert.Certificate}},
		{"no certificate", tls.Certificate{PrivateKey: cert.PrivateKey}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cred, err := NewCertificateCredential(tt.cert)
			if !errors.Is(err, ErrNeedCertificate) || cred != nil {
				t.Errorf("NewCertificateCredential = %v, %v; want ErrNeedCertificate", cred, err)
			}
		})
	}

	cred, err := NewCertificateCredential(cert)
	if err != nil {
		t.Fatalf("NewCertificateCredential = %v", err)
	}
	got := cred.ClientCertificate()
	if got == nil || len(got.Certificate) != 1 || string(got.Certificate[0]) != string(cert.Certificate[0]) || got.PrivateKey != cert.PrivateKey {
		t.Errorf("ClientCertificate() = %v, want the certificate given", got)
	}
	token, expiry, err := cred.Token(t.Context(), testHost)
	if token != "" || !expiry.IsZero() || err != nil {
		t.Errorf("Token = %q, %v, %v; want no token", token, expiry, err)
	}
}

// TestCredentialsDoNotPrintSecrets formats and logs every credential in
// every way fmt and slog offer, and looks for the key, the signature and
// the private key in the output.
func TestCredentialsDoNotPrintSecrets(t *testing.T) {
	keyCred, err := NewKeyCredential(testKey, "iothubowner", 0)
	if err != nil {
		t.Fatal(err)
	}
	tokenCred, err := NewTokenCredential(wantDeviceToken)
	if err != nil {
		t.Fatal(err)
	}
	cert, privateKey := testCertificate(t)
	certCred, err := NewCertificateCredential(cert)
	if err != nil {
		t.Fatal(err)
	}
	sigBytes, err := base64.StdEncoding.DecodeString(mustUnescape(t, fields(t, wantDeviceToken)["sig"]))
	if err != nil {
		t.Fatal(err)
	}
	d := privateKey.D.Bytes()
	secrets := append(secretsOf(t), privateKey.D.String(), privateKey.D.Text(16))

	values := []any{keyCred, *keyCred, tokenCred, *tokenCred, certCred, *certCred}
	for _, v := range values {
		for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
			out := fmt.Sprintf(format, v)
			assertNoSecret(t, fmt.Sprintf("Sprintf(%q, %T)", format, v), out, secrets...)
			for _, b := range [][]byte{testKeyBytes(t), sigBytes, d} {
				if secrettest.ShowsBytes(out, b) {
					t.Errorf("Sprintf(%q, %T) = %s, shows a secret's bytes", format, v, out)
				}
			}
		}
		out := logged(v)
		assertNoSecret(t, fmt.Sprintf("log of %T", v), out, secrets...)
		for _, b := range [][]byte{testKeyBytes(t), sigBytes, d} {
			if secrettest.ShowsBytes(out, b) {
				t.Errorf("log of %T = %s, shows a secret's bytes", v, out)
			}
		}
	}

	if got, want := keyCred.String(), `sas.KeyCredential{keyName: "iothubowner", lifetime: 1h0m0s, key: REDACTED}`; got != want {
		t.Errorf("KeyCredential.String() = %q, want %q", got, want)
	}
	if got := tokenCred.String(); !strings.Contains(got, "se=1767225600") {
		t.Errorf("TokenCredential.String() = %q, want the expiry", got)
	}
}

func TestZeroCredentials(t *testing.T) {
	var tc TokenCredential
	if _, _, err := tc.Token(t.Context(), testHost); !errors.Is(err, ErrMalformedToken) {
		t.Errorf("zero TokenCredential: Token = %v, want ErrMalformedToken", err)
	}
	if got := fmt.Sprint(tc, &tc); got != "sas.TokenCredential{} sas.TokenCredential{}" {
		t.Errorf("zero TokenCredential prints %q", got)
	}
}
