package sastoken

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fieldsOf splits a well-formed token into its fields.
func fieldsOf(token string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Split(strings.TrimPrefix(token, "SharedAccessSignature "), "&") {
		name, value, _ := strings.Cut(f, "=")
		m[name] = value
	}
	return m
}

func FuzzParse(f *testing.F) {
	key := testKeyBytes(f)
	sig := fieldsOf(wantDeviceToken)["sig"]
	for _, seed := range []string{
		wantDeviceToken,
		Sign(key, testHost, "iothubowner", time.Unix(testExpiry, 0)),
		Sign(key, resource(testHost, "dev-01", "fan-ctl"), "", time.Unix(testExpiry, 0)),
		"SharedAccessSignature sig=" + sig + "&se=1767225600&sr=myhub.azure-devices.net%2Fdevices%2Fdev-01",
		"SharedAccessSignature sr=myhub.azure-devices.net/devices/dev-01&sig=" + mustUnescape(f, sig) + "&se=1767225600&skn=a%20b",
		"SharedAccessSignature SR=h&SIG=" + strings.ToLower(sig) + "&SE=%31&x=",
		"SharedAccessSignature sr=h&sig=" + sig + "&se=253402300799",
		"SharedAccessSignature sr=h&sig=" + sig + "&se=9223372036854775807",
		"SharedAccessSignature sr=%zz&sig=&se=-1&&",
		"SharedAccessSignature ",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrMalformedToken) {
				t.Fatalf("error %v does not wrap ErrMalformedToken", err)
			}
			if tok != nil {
				t.Fatalf("Parse returned a token with its error")
			}
			return
		}
		if len(tok.signature) != 32 {
			t.Errorf("signature of %d bytes", len(tok.signature))
		}
		if r, err := url.QueryUnescape(tok.EncodedResource); err != nil || r != tok.Resource {
			t.Errorf("Resource %q is not EncodedResource %q decoded", tok.Resource, tok.EncodedResource)
		}
		if u := tok.Expiry.Unix(); u < 0 || u > maxExpiry || !tok.Expiry.After(time.Unix(-1, 0)) {
			t.Errorf("expiry %v out of range", tok.Expiry)
		}
		want := "sr=" + tok.EncodedResource + " se=" + tok.expiry
		if tok.KeyName != "" {
			want += " skn=" + tok.KeyName
		}
		if got := tok.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}

		// A token that verifies with the test key must be the one
		// Sign makes for the same claims, up to encoding.
		if err := tok.Verify(key, tok.Expiry); err != nil && !errors.Is(err, ErrBadSignature) {
			t.Errorf("Verify at expiry = %v, want nil or ErrBadSignature", err)
		}
		if err := tok.Verify(key, tok.Expiry.Add(MaxClockSkew+time.Second)); err == nil {
			t.Errorf("Verify after the skew succeeded")
		}

		// The same claims signed again parse back to themselves.
		resigned := Sign(key, tok.Resource, tok.KeyName, tok.Expiry)
		again, err := Parse(resigned)
		if err != nil {
			t.Fatalf("Parse(Sign(claims)) = %v", err)
		}
		got := []any{again.Resource, again.KeyName, again.Expiry.Unix()}
		wantClaims := []any{tok.Resource, tok.KeyName, tok.Expiry.Unix()}
		if diff := cmp.Diff(wantClaims, got); diff != "" {
			t.Errorf("re-signed claims (-want +got):\n%s", diff)
		}
		if err := again.Verify(key, tok.Expiry); err != nil {
			t.Errorf("re-signed token: Verify = %v", err)
		}
		if again.Covers(tok.Resource) != tok.Covers(tok.Resource) {
			t.Errorf("re-signed token covers differently")
		}
	})
}
