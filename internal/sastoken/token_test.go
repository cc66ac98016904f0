package sastoken

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/internal/secrettest"
	"github.com/google/go-cmp/cmp"
)

// Known answers, computed by the official Azure IoT SDK's signing code.
const (
	testKey    = "bG9jYWwtaHViLXRlc3Qta2V5LTAxMjM0NTY3ODlhYmNkZWY="
	testExpiry = 1767225600
	testHost   = "myhub.azure-devices.net"

	wantDeviceToken = "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev-01&sig=%2BitkQGIHQUM%2BDNRTbRNrWLESz9QQ%2FVFlP1QrtqFUt4Y%3D&se=1767225600"
	wantModuleSig   = "95f%2Bzavh%2FBWxy%2B4nLPANF%2FPuPbUlOuxxOMFcn%2B%2FnMzM%3D"
	wantPolicySig   = "Ha5watJ3EuLTpofds7zE0HPmOXX%2FNh2Big3HSE3CQRg%3D"
)

func testKeyBytes(t testing.TB) []byte {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(testKey)
	if err != nil {
		t.Fatalf("decode testKey: %v", err)
	}
	return key
}

// resource is the resource URI of a device or module, as sas.Resource
// builds it.
func resource(host, deviceID, moduleID string) string {
	r := host + "/devices/" + deviceID
	if moduleID != "" {
		r += "/modules/" + moduleID
	}
	return r
}

// fields splits a token into its name=value fields.
func fields(t *testing.T, token string) map[string]string {
	t.Helper()
	if !strings.HasPrefix(token, "SharedAccessSignature ") {
		t.Fatalf("token %q lacks the prefix", token)
	}
	return fieldsOf(token)
}

func TestSignKnownAnswers(t *testing.T) {
	key := testKeyBytes(t)
	expiry := time.Unix(testExpiry, 0)

	if got := Sign(key, resource(testHost, "dev-01", ""), "", expiry); got != wantDeviceToken {
		t.Errorf("device token:\n got %s\nwant %s", got, wantDeviceToken)
	}

	module := Sign(key, resource(testHost, "dev-01", "fan-ctl"), "", expiry)
	if got := fields(t, module)["sig"]; got != wantModuleSig {
		t.Errorf("module sig = %s, want %s", got, wantModuleSig)
	}
	if got := fields(t, module)["sr"]; got != "myhub.azure-devices.net%2Fdevices%2Fdev-01%2Fmodules%2Ffan-ctl" {
		t.Errorf("module sr = %s", got)
	}

	policy := Sign(key, testHost, "iothubowner", expiry)
	want := map[string]string{
		"sr":  "myhub.azure-devices.net",
		"sig": wantPolicySig,
		"se":  "1767225600",
		"skn": "iothubowner",
	}
	if diff := cmp.Diff(want, fields(t, policy)); diff != "" {
		t.Errorf("policy token fields (-want +got):\n%s", diff)
	}
}

func TestSignParseVerifyRoundTrip(t *testing.T) {
	key := testKeyBytes(t)
	expiry := time.Unix(testExpiry, 0)
	tests := []struct {
		name, resource, keyName string
	}{
		{"device", resource(testHost, "dev-01", ""), ""},
		{"module", resource(testHost, "dev-01", "fan-ctl"), ""},
		{"policy", testHost, "iothubowner"},
		{"policy name needing encoding", testHost, "my policy&co"},
		{"id with every allowed punctuation", resource(testHost, "a-:.+%_#*?!(),=@;$'z", ""), ""},
		{"id with a space-like plus", resource(testHost, "a+b", "m+1"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := Sign(key, tt.resource, tt.keyName, expiry)
			parsed, err := Parse(token)
			if err != nil {
				t.Fatalf("Parse(Sign(...)) = %v", err)
			}
			got := struct {
				Resource, KeyName string
				Expiry            int64
			}{parsed.Resource, parsed.KeyName, parsed.Expiry.Unix()}
			want := struct {
				Resource, KeyName string
				Expiry            int64
			}{tt.resource, tt.keyName, testExpiry}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("parsed token (-want +got):\n%s", diff)
			}
			if err := parsed.Verify(key, expiry); err != nil {
				t.Errorf("Verify = %v", err)
			}
			if !parsed.Covers(tt.resource) {
				t.Errorf("token does not cover its own resource %q", tt.resource)
			}
			if err := parsed.Verify([]byte("another key"), expiry); !errors.Is(err, ErrBadSignature) {
				t.Errorf("Verify with another key = %v, want ErrBadSignature", err)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	sig := fields(t, wantDeviceToken)["sig"]
	sr := "sr=myhub.azure-devices.net%2Fdevices%2Fdev-01"
	se := "se=1767225600"
	tests := []struct {
		name, token string
	}{
		{"empty", ""},
		{"missing prefix", sr + "&sig=" + sig + "&" + se},
		{"wrong prefix", "SharedAccessKey " + sr + "&sig=" + sig + "&" + se},
		{"lowercase prefix", "sharedaccesssignature " + sr + "&sig=" + sig + "&" + se},
		{"prefix only", "SharedAccessSignature"},
		{"missing sr", "SharedAccessSignature sig=" + sig + "&" + se},
		{"missing sig", "SharedAccessSignature " + sr + "&" + se},
		{"missing se", "SharedAccessSignature " + sr + "&sig=" + sig},
		{"duplicate sr", "SharedAccessSignature " + sr + "&sig=" + sig + "&" + se + "&" + sr},
		{"duplicate sig in another case", "SharedAccessSignature " + sr + "&sig=" + sig + "&" + se + "&SIG=" + sig},
		{"duplicate skn", "SharedAccessSignature " + sr + "&sig=" + sig + "&" + se + "&skn=a&skn=b"},
		{"empty sr", "SharedAccessSignature sr=&sig=" + sig + "&" + se},
		{"empty sig", "SharedAccessSignature " + sr + "&sig=&" + se},
		{"empty se", "SharedAccessSignature " + sr + "&sig=" + sig + "&se="},
		{"empty skn", "SharedAccessSignature " + sr + "&sig=" + sig + "&" + se + "&skn="},
		{"field without =", "SharedAccessSignature " + sr + "&sig=" + sig + "&" + se + "&junk"},
		{"bad base64 sig", "SharedAccessSignature " + sr + "&sig=" + strings.Replace(sig, "%2B", "!", 1) + "&" + se},
		{"sig too short", "SharedAccessSignature " + sr + "&sig=" + base64.StdEncoding.EncodeToString(make([]byte, 31)) + "&" + se},
		{"sig too long", "SharedAccessSignature " + sr + "&sig=" + base64.StdEncoding.EncodeToString(make([]byte, 33)) + "&" + se},
		{"non-numeric se", "SharedAccessSignature " + sr + "&sig=" + sig + "&se=tomorrow"},
		{"fractional se", "SharedAccessSignature " + sr + "&sig=" + sig + "&se=1767225600.5"},
		{"negative se", "SharedAccessSignature " + sr + "&sig=" + sig + "&se=-1"},
		{"se out of range", "SharedAccessSignature " + sr + "&sig=" + sig + "&se=99999999999999999999"},
		{"se past year 9999", "SharedAccessSignature " + sr + "&sig=" + sig + "&se=9223372036854775807"},
		{"bad percent-encoding in sr", "SharedAccessSignature sr=myhub%2&sig=" + sig + "&" + se},
		{"bad percent-encoding in sig", "SharedAccessSignature " + sr + "&sig=" + sig[:len(sig)-2] + "&" + se},
		{"bad percent-encoding in se", "SharedAccessSignature " + sr + "&sig=" + sig + "&se=%zz"},
		{"bad percent-encoding in skn", "SharedAccessSignature " + sr + "&sig=" + sig + "&" + se + "&skn=%"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.token)
			if !errors.Is(err, ErrMalformedToken) {
				t.Fatalf("Parse = %v, %v; want ErrMalformedToken", got, err)
			}
			if got != nil {
				t.Errorf("Parse returned a token with its error: %v", got)
			}
			msg := err.Error()
			for _, secret := range []string{sig, mustUnescape(t, sig), "itkQGIHQUM"} {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q contains the signature", msg)
				}
			}
		})
	}
}

func mustUnescape(t testing.TB, s string) string {
	t.Helper()
	u, err := url.QueryUnescape(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestParseFieldForms checks the forms other SDKs produce: any field
// order, names in any case, lowercase percent-encoding, an unencoded sig.
func TestParseFieldForms(t *testing.T) {
	key := testKeyBytes(t)
	now := time.Unix(testExpiry, 0)
	sr := "myhub.azure-devices.net%2Fdevices%2Fdev-01"
	sig := fields(t, wantDeviceToken)["sig"]
	rawSig := mustUnescape(t, sig) // "+itkQGIHQUM+DNRTbRNrWLESz9QQ/VFlP1QrtqFUt4Y="
	policySig := fields(t, Sign(key, testHost, "iothubowner", now))["sig"]

	tests := []struct {
		name, token, resource, keyName string
	}{
		{"sdk order", wantDeviceToken, "myhub.azure-devices.net/devices/dev-01", ""},
		{"docs order sig, se, sr", "SharedAccessSignature sig=" + sig + "&se=1767225600&sr=" + sr, "myhub.azure-devices.net/devices/dev-01", ""},
		{"node order skn before se", "SharedAccessSignature sr=myhub.azure-devices.net&sig=" + policySig + "&skn=iothubowner&se=1767225600", testHost, "iothubowner"},
		{"upper-case names", "SharedAccessSignature SR=" + sr + "&Sig=" + sig + "&SE=1767225600", "myhub.azure-devices.net/devices/dev-01", ""},
		{"lowercase percent-encoding of sig", "SharedAccessSignature sr=" + sr + "&sig=" + strings.NewReplacer("%2B", "%2b", "%2F", "%2f", "%3D", "%3d").Replace(sig) + "&se=1767225600", "myhub.azure-devices.net/devices/dev-01", ""},
		{"unencoded sig with literal plus", "SharedAccessSignature sr=" + sr + "&sig=" + rawSig + "&se=1767225600", "myhub.azure-devices.net/devices/dev-01", ""},
		{"unknown field ignored", wantDeviceToken + "&foo=bar", "myhub.azure-devices.net/devices/dev-01", ""},
		{"surrounding whitespace", "  " + wantDeviceToken + "\n", "myhub.azure-devices.net/devices/dev-01", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "lowercase percent-encoding of sig" && !strings.Contains(tt.token, "%2b") {
				t.Fatalf("test token %q has no lowercase escape", tt.token)
			}
			parsed, err := Parse(tt.token)
			if err != nil {
				t.Fatalf("Parse = %v", err)
			}
			if diff := cmp.Diff([]string{tt.resource, tt.keyName}, []string{parsed.Resource, parsed.KeyName}); diff != "" {
				t.Errorf("resource and key name (-want +got):\n%s", diff)
			}
			if err := parsed.Verify(key, now); err != nil {
				t.Errorf("Verify = %v", err)
			}
		})
	}
}

// TestVerifyRawResource checks a token whose sr is not URL-encoded, as the
// Azure IoT C SDK signs and sends it: the signature covers sr exactly as
// received.
func TestVerifyRawResource(t *testing.T) {
	key := testKeyBytes(t)
	const sr = "myhub.azure-devices.net/devices/dev-01"
	se := strconv.Itoa(testExpiry)
	h := hmac.New(sha256.New, key)
	h.Write([]byte(sr + "\n" + se))
	sig := url.QueryEscape(base64.StdEncoding.EncodeToString(h.Sum(nil)))
	token := "SharedAccessSignature sr=" + sr + "&sig=" + sig + "&se=" + se

	parsed, err := Parse(token)
	if err != nil {
		t.Fatalf("Parse = %v", err)
	}
	if err := parsed.Verify(key, time.Unix(testExpiry, 0)); err != nil {
		t.Errorf("Verify = %v", err)
	}
	if parsed.EncodedResource != sr || parsed.Resource != sr {
		t.Errorf("EncodedResource, Resource = %q, %q; want both %q", parsed.EncodedResource, parsed.Resource, sr)
	}
	if !parsed.Covers(resource(testHost, "dev-01", "")) {
		t.Errorf("raw-sr token does not cover its device")
	}
}

func TestVerifyTampered(t *testing.T) {
	key := testKeyBytes(t)
	now := time.Unix(testExpiry, 0)
	sig := fields(t, wantDeviceToken)["sig"]
	otherSig := url.QueryEscape(base64.StdEncoding.EncodeToString(make([]byte, 32)))
	tests := []struct {
		name, token string
	}{
		{"other device", strings.Replace(wantDeviceToken, "dev-01", "dev-02", 1)},
		{"sr encoded differently", strings.Replace(wantDeviceToken, "%2Fdevices", "/devices", 1)},
		{"sr escape in lowercase", strings.Replace(wantDeviceToken, "%2Fdevices", "%2fdevices", 1)},
		{"later se", strings.Replace(wantDeviceToken, "se=1767225600", "se=1767225601", 1)},
		{"other sig", strings.Replace(wantDeviceToken, sig, otherSig, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parsed, err := Parse(tt.token)
			if err != nil {
				t.Fatalf("Parse = %v", err)
			}
			err = parsed.Verify(key, now)
			if !errors.Is(err, ErrBadSignature) {
				t.Errorf("Verify = %v, want ErrBadSignature", err)
			}
		})
	}
}

func TestVerifyExpiry(t *testing.T) {
	key := testKeyBytes(t)
	expiry := time.Unix(testExpiry, 0)
	parsed, err := Parse(wantDeviceToken)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		now     time.Time
		expired bool
	}{
		{"long before", expiry.Add(-time.Hour), false},
		{"at expiry", expiry, false},
		{"just inside the skew", expiry.Add(MaxClockSkew), false},
		{"just outside the skew", expiry.Add(MaxClockSkew + time.Nanosecond), true},
		{"a day later", expiry.Add(24 * time.Hour), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := parsed.Verify(key, tt.now)
			if got := errors.Is(err, ErrTokenExpired); got != tt.expired {
				t.Errorf("Verify at %v = %v; expired %v, want %v", tt.now, err, got, tt.expired)
			}
			if !tt.expired && err != nil {
				t.Errorf("Verify = %v, want nil", err)
			}
		})
	}
}

func TestTokenDoesNotPrintSignature(t *testing.T) {
	parsed, err := Parse(wantDeviceToken)
	if err != nil {
		t.Fatal(err)
	}
	sig := mustUnescape(t, fields(t, wantDeviceToken)["sig"])
	raw, _ := base64.StdEncoding.DecodeString(sig)
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{parsed, *parsed} {
			out := fmt.Sprintf(format, v)
			if strings.Contains(out, sig) || strings.Contains(out, "itkQGIHQUM") || secrettest.ShowsBytes(out, raw) {
				t.Errorf("Sprintf(%q, %T) = %s, shows the signature", format, v, out)
			}
		}
	}
	if got, want := parsed.String(), "sr=myhub.azure-devices.net%2Fdevices%2Fdev-01 se=1767225600"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestZeroTokenDoesNotVerify(t *testing.T) {
	var zero Token
	if err := zero.Verify(testKeyBytes(t), time.Now()); !errors.Is(err, ErrBadSignature) {
		t.Errorf("zero Token: Verify = %v, want ErrBadSignature", err)
	}
}
