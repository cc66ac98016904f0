package sas

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func FuzzParseConnectionString(f *testing.F) {
	for _, seed := range []string{
		testConnectionString,
		testConnectionString + ";ModuleId=fan-ctl;GatewayHostName=edge-gw.local",
		testConnectionString + ";SharedAccessKeyName=iothubowner",
		"HostName=myhub.azure-devices.net;DeviceId=dev-01;SharedAccessSignature=" + wantDeviceToken,
		"HostName=myhub.azure-devices.net;DeviceId=dev-01;x509=true",
		" HostName = h ; DeviceId = a-:.+%_#*?!(),=@$'z ; SharedAccessKey = AAAA== ; ",
		"HostName=h;DeviceId=d;SharedAccessSignature= SharedAccessSignature se=1&SIG=" + fieldsOf(wantDeviceToken)["sig"] + "&sr=h ;x509=",
		"HostName=h;DeviceId=d;SharedAccessSignature=SharedAccessSignature sr=h&sig=" + fieldsOf(wantDeviceToken)["sig"] + "&se=1\t;",
		"HostName=h;DeviceId=d;Foo=bar",
		"HostName=h;HostName=h",
		"HostName=h;DeviceId=d;SharedAccessKey=***",
		"=;==;;",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cs, err := ParseConnectionString(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidConnectionString) {
				t.Fatalf("error %v does not wrap ErrInvalidConnectionString", err)
			}
			if cs != nil {
				t.Fatalf("ParseConnectionString returned a value with its error")
			}
			return
		}
		if err := ValidateHostName(cs.HostName); err != nil {
			t.Errorf("accepted host name %q: %v", cs.HostName, err)
		}
		if err := ValidateID(cs.DeviceID); err != nil {
			t.Errorf("accepted device id %q: %v", cs.DeviceID, err)
		}
		schemes := 0
		for _, set := range []bool{cs.SharedAccessKey != "", cs.SharedAccessSignature != "", cs.X509} {
			if set {
				schemes++
			}
		}
		if schemes != 1 {
			t.Errorf("accepted %d authentication schemes", schemes)
		}
		if cs.SharedAccessKeyName != "" && cs.SharedAccessKey == "" {
			t.Errorf("accepted a key name without a key")
		}

		// String redacts the secrets and otherwise says everything:
		// with the secrets put back, it parses to the same value.
		var pairs []string
		for _, pair := range strings.Split(cs.String(), ";") {
			switch pair {
			case "SharedAccessKey=REDACTED":
				pair = "SharedAccessKey=" + cs.SharedAccessKey
			case "SharedAccessSignature=REDACTED":
				pair = "SharedAccessSignature=" + cs.SharedAccessSignature
			default:
				key, _, _ := strings.Cut(pair, "=")
				if key == "SharedAccessKey" || key == "SharedAccessSignature" {
					t.Fatalf("String() shows %s unredacted", key)
				}
			}
			pairs = append(pairs, pair)
		}
		again, err := ParseConnectionString(strings.Join(pairs, ";"))
		if err != nil {
			t.Fatalf("String() with the secrets put back does not parse: %v", err)
		}
		if diff := cmp.Diff(*cs, *again); diff != "" {
			t.Errorf("reparsed String() differs (-first +again):\n%s", diff)
		}

		cred, err := cs.Credential(time.Minute)
		switch {
		case cs.X509:
			if !errors.Is(err, ErrNeedCertificate) {
				t.Errorf("Credential for x509 = %v, want ErrNeedCertificate", err)
			}
		case err != nil || cred == nil:
			t.Errorf("Credential = %v, %v", cred, err)
		}
	})
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

func FuzzParseToken(f *testing.F) {
	key := testKeyBytes(f)
	sig := fieldsOf(wantDeviceToken)["sig"]
	for _, seed := range []string{
		wantDeviceToken,
		Sign(key, testHost, "iothubowner", time.Unix(testExpiry, 0)),
		Sign(key, Resource(testHost, "dev-01", "fan-ctl"), "", time.Unix(testExpiry, 0)),
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
		tok, err := ParseToken(s)
		if err != nil {
			if !errors.Is(err, ErrMalformedToken) {
				t.Fatalf("error %v does not wrap ErrMalformedToken", err)
			}
			if tok != nil {
				t.Fatalf("ParseToken returned a token with its error")
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
		again, err := ParseToken(resigned)
		if err != nil {
			t.Fatalf("ParseToken(Sign(claims)) = %v", err)
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
