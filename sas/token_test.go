package sas

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Known answers, computed by the official Azure IoT SDK's signing code.
const (
	testKey    = "bG9jYWwtaHViLXRlc3Qta2V5LTAxMjM0NTY3ODlhYmNkZWY="
	testExpiry = 1767225600
	testHost   = "myhub.azure-devices.net"

	wantDeviceToken = "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev-01&sig=%2BitkQGIHQUM%2BDNRTbRNrWLESz9QQ%2FVFlP1QrtqFUt4Y%3D&se=1767225600"
)

func testKeyBytes(t testing.TB) []byte {
	t.Helper()
	key, err := DecodeKey(testKey)
	if err != nil {
		t.Fatalf("DecodeKey(testKey) = %v", err)
	}
	return key
}

// fields splits a token into its name=value fields.
func fields(t *testing.T, token string) map[string]string {
	t.Helper()
	if !strings.HasPrefix(token, "SharedAccessSignature ") {
		t.Fatalf("token %q lacks the prefix", token)
	}
	return fieldsOf(token)
}

// fieldsOf splits a well-formed token into its fields.
func fieldsOf(token string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Split(strings.TrimPrefix(token, "SharedAccessSignature "), "&") {
		name, value, _ := strings.Cut(f, "=")
		m[name] = value
	}
	return m
}

func mustUnescape(t testing.TB, s string) string {
	t.Helper()
	u, err := url.QueryUnescape(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestSignKnownAnswer(t *testing.T) {
	if got := Sign(testKeyBytes(t), Resource(testHost, "dev-01", ""), "", time.Unix(testExpiry, 0)); got != wantDeviceToken {
		t.Errorf("device token:\n got %s\nwant %s", got, wantDeviceToken)
	}
}

func TestParseToken(t *testing.T) {
	key := testKeyBytes(t)
	expiry := time.Unix(testExpiry, 0)
	sig := fields(t, wantDeviceToken)["sig"]
	tests := []struct {
		name, token string
		want        Token
	}{
		{"device", wantDeviceToken, Token{Resource: "myhub.azure-devices.net/devices/dev-01", Expiry: expiry}},
		{"module", Sign(key, Resource(testHost, "dev-01", "fan-ctl"), "", expiry), Token{Resource: "myhub.azure-devices.net/devices/dev-01/modules/fan-ctl", Expiry: expiry}},
		{"policy", Sign(key, testHost, "my policy&co", expiry), Token{Resource: testHost, KeyName: "my policy&co", Expiry: expiry}},
		{"fields in another order and case", "SharedAccessSignature SIG=" + sig + "&se=1767225600&Sr=myhub.azure-devices.net%2Fdevices%2Fdev-01", Token{Resource: "myhub.azure-devices.net/devices/dev-01", Expiry: expiry}},
		{"sr not encoded, as the C SDK sends it", "SharedAccessSignature sr=myhub.azure-devices.net/devices/dev-01&sig=" + sig + "&se=1767225600", Token{Resource: "myhub.azure-devices.net/devices/dev-01", Expiry: expiry}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseToken(tt.token)
			if err != nil {
				t.Fatalf("ParseToken = %v", err)
			}
			if diff := cmp.Diff(&tt.want, got); diff != "" {
				t.Errorf("ParseToken (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseTokenMalformed(t *testing.T) {
	sig := fields(t, wantDeviceToken)["sig"]
	for _, token := range []string{
		"",
		"SharedAccessSignature",
		strings.TrimPrefix(wantDeviceToken, "SharedAccessSignature "),
		"SharedAccessSignature sr=myhub.azure-devices.net&sig=" + sig,
		"SharedAccessSignature sr=myhub.azure-devices.net&sig=" + sig + "&se=tomorrow",
		"SharedAccessSignature sr=myhub.azure-devices.net&sig=c2hvcnQ%3D&se=1767225600",
	} {
		got, err := ParseToken(token)
		if !errors.Is(err, ErrMalformedToken) || got != nil {
			t.Errorf("ParseToken(%q) = %v, %v; want ErrMalformedToken", token, got, err)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, sig) || strings.Contains(msg, mustUnescape(t, sig)) {
			t.Errorf("error %q contains the signature", msg)
		}
	}
}
