package sas

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/internal/idcheck"
	"github.com/google/go-cmp/cmp"
)

const testConnectionString = "HostName=myhub.azure-devices.net;DeviceId=dev-01;SharedAccessKey=" + testKey

// secretsOf lists the forms in which the test key and the test token's
// signature could leak.
func secretsOf(t *testing.T) []string {
	t.Helper()
	sig := fields(t, wantDeviceToken)["sig"]
	return []string{
		testKey,
		strings.TrimRight(testKey, "="),
		string(testKeyBytes(t)),
		sig,
		mustUnescape(t, sig),
		"itkQGIHQUM",
	}
}

func assertNoSecret(t *testing.T, what, out string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(out, s) {
			t.Errorf("%s = %q, contains the secret %q", what, out, s)
		}
	}
}

func TestParseConnectionStringErrors(t *testing.T) {
	const host = "HostName=myhub.azure-devices.net;"
	const dev = "DeviceId=dev-01;"
	const key = "SharedAccessKey=" + testKey
	badKey := "bG9jYWwtaHViLXRlc3Qta2V5*TAxMjM0NTY3ODlhYmNkZWY="
	longID := strings.Repeat("a", idcheck.MaxIDLength+1)
	tests := []struct {
		name    string
		s       string
		mention string // what the message must name
		secret  string // a value of the string the message must not show
	}{
		{"empty", "", "HostName", ""},
		{"only separators", " ;; ; ", "HostName", ""},
		{"unknown key", host + dev + key + ";Foo=bar", `"Foo"`, "bar"},
		{"key names are case-sensitive", "hostname=myhub.azure-devices.net;" + dev + key, `"hostname"`, ""},
		{"X509Cert is not a synonym", host + dev + "X509Cert=true", `"X509Cert"`, ""},
		{"unknown key that looks like a secret", host + dev + key + ";" + testKey[:40] + "=x", "unknown key", testKey[:40]},
		{"unknown key with odd characters", host + dev + key + ";a/b+c=x", "unknown key", "a/b+c"},
		{"duplicate key", host + dev + key + ";SharedAccessKey=" + badKey, "duplicate key SharedAccessKey", badKey},
		{"duplicate HostName", host + host + dev + key, "duplicate key HostName", ""},
		{"empty HostName", "HostName=;" + dev + key, "empty value for HostName", ""},
		{"empty SharedAccessKey", host + dev + "SharedAccessKey=", "empty value for SharedAccessKey", ""},
		{"empty x509", host + dev + "x509=", "empty value for x509", ""},
		{"missing HostName", dev + key, "missing HostName", ""},
		{"missing DeviceId", host + key, "missing DeviceId", ""},
		{"policy key without DeviceId", host + "SharedAccessKeyName=iothubowner;" + key, "missing DeviceId", ""},
		{"invalid base64 key", host + dev + "SharedAccessKey=" + badKey, "SharedAccessKey", badKey},
		{"base64 key without padding", host + dev + "SharedAccessKey=" + strings.TrimRight(testKey, "="), "SharedAccessKey", strings.TrimRight(testKey, "=")},
		{"url-safe base64 key", host + dev + "SharedAccessKey=ab-_ab-_", "SharedAccessKey", "ab-_ab-_"},
		{"key and token", host + dev + key + ";SharedAccessSignature=" + wantDeviceToken, "more than one authentication scheme", ""},
		{"key and x509", host + dev + key + ";x509=true", "more than one authentication scheme", ""},
		{"token and x509", host + dev + "x509=true;SharedAccessSignature=" + wantDeviceToken, "more than one authentication scheme", ""},
		{"no scheme", host + dev, "SharedAccessKey", ""},
		{"key name without key", host + dev + "SharedAccessKeyName=iothubowner", "SharedAccessKeyName", ""},
		{"key name with token", host + dev + "SharedAccessKeyName=iothubowner;SharedAccessSignature=" + wantDeviceToken, "SharedAccessKeyName", ""},
		{"key name with x509", host + dev + "SharedAccessKeyName=iothubowner;x509=true", "SharedAccessKeyName", ""},
		{"x509 false", host + dev + "x509=false", "x509", ""},
		{"x509 yes", host + dev + "x509=yes", "x509", "yes"},
		{"blank value", host + dev + "SharedAccessKey=  ", "empty value for SharedAccessKey", ""},
		{"host with a space", "HostName=my hub.azure-devices.net;" + dev + key, "HostName", ""},
		{"host with a port", "HostName=myhub.azure-devices.net:8883;" + dev + key, "HostName", ""},
		{"host with a scheme", "HostName=https://myhub.azure-devices.net;" + dev + key, "HostName", ""},
		{"host too long", "HostName=" + strings.Repeat("h", 254) + ";" + dev + key, "HostName", ""},
		{"device id with a slash", host + "DeviceId=dev/01;" + key, "DeviceId", ""},
		{"device id with a space", host + "DeviceId=dev 01;" + key, "DeviceId", ""},
		{"device id too long", host + "DeviceId=" + longID + ";" + key, "DeviceId", ""},
		{"device id not ASCII", host + "DeviceId=gerät;" + key, "DeviceId", ""},
		{"module id with a slash", host + dev + "ModuleId=a/b;" + key, "ModuleId", ""},
		{"module id too long", host + dev + "ModuleId=" + longID + ";" + key, "ModuleId", ""},
		{"gateway with a slash", host + dev + "GatewayHostName=gw/x;" + key, "GatewayHostName", ""},
		{"malformed token", host + dev + "SharedAccessSignature=SharedAccessSignature sr=h&sig=c2VjcmV0&se=1", "SharedAccessSignature", "c2VjcmV0"},
		{"token without prefix", host + dev + "SharedAccessSignature=" + strings.TrimPrefix(wantDeviceToken, "SharedAccessSignature "), "SharedAccessSignature", ""},
		{"pair without =", host + dev + key + ";" + testKey[:43], "pair 4", testKey[:43]},
		{"key pasted as a pair", host + dev + testKey[:43] + ";" + key, "pair 3", testKey[:43]},
		{"wrapped in double quotes", `"` + host + dev + key + `"`, "quotes", ""},
		{"wrapped in single quotes", `'` + host + dev + key + `'`, "quotes", ""},
		{"opening quote only", `"` + host + dev + key, "quotes", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := ParseConnectionString(tt.s)
			if !errors.Is(err, ErrInvalidConnectionString) {
				t.Fatalf("ParseConnectionString = %v, %v; want ErrInvalidConnectionString", cs, err)
			}
			if cs != nil {
				t.Errorf("ParseConnectionString returned %v with its error", cs)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.mention) {
				t.Errorf("error %q does not mention %q", msg, tt.mention)
			}
			assertNoSecret(t, "error", msg, append(secretsOf(t), tt.secret)...)
		})
	}
}

func TestParseConnectionString(t *testing.T) {
	tests := []struct {
		name string
		s    string
		want ConnectionString
	}{
		{
			name: "device",
			s:    testConnectionString,
			want: ConnectionString{HostName: testHost, DeviceID: "dev-01", SharedAccessKey: testKey},
		},
		{
			name: "module",
			s:    "HostName=myhub.azure-devices.net;DeviceId=dev-01;ModuleId=fan-ctl;SharedAccessKey=" + testKey,
			want: ConnectionString{HostName: testHost, DeviceID: "dev-01", ModuleID: "fan-ctl", SharedAccessKey: testKey},
		},
		{
			name: "gateway",
			s:    "HostName=myhub.azure-devices.net;DeviceId=dev-01;SharedAccessKey=" + testKey + ";GatewayHostName=edge-gw.local",
			want: ConnectionString{HostName: testHost, DeviceID: "dev-01", SharedAccessKey: testKey, GatewayHostName: "edge-gw.local"},
		},
		{
			name: "policy key",
			s:    "HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;DeviceId=dev-01;SharedAccessKey=" + testKey,
			want: ConnectionString{HostName: testHost, DeviceID: "dev-01", SharedAccessKey: testKey, SharedAccessKeyName: "iothubowner"},
		},
		{
			name: "SAS token",
			s:    "HostName=myhub.azure-devices.net;DeviceId=dev-01;SharedAccessSignature=" + wantDeviceToken,
			want: ConnectionString{HostName: testHost, DeviceID: "dev-01", SharedAccessSignature: wantDeviceToken},
		},
		{
			name: "x509",
			s:    "HostName=myhub.azure-devices.net;DeviceId=dev-01;x509=true",
			want: ConnectionString{HostName: testHost, DeviceID: "dev-01", X509: true},
		},
		{
			name: "x509 in upper case",
			s:    "HostName=myhub.azure-devices.net;DeviceId=dev-01;x509=TRUE",
			want: ConnectionString{HostName: testHost, DeviceID: "dev-01", X509: true},
		},
		{
			name: "trailing separator and spaces around keys and values",
			s:    "  HostName=myhub.azure-devices.net; DeviceId = dev-01 ;SharedAccessKey=\t" + testKey + " ;\n",
			want: ConnectionString{HostName: testHost, DeviceID: "dev-01", SharedAccessKey: testKey},
		},
		{
			name: "padding kept",
			s:    "HostName=h.example;DeviceId=d;SharedAccessKey=AAAAAAAAAAAAAAAAAAAAAA==",
			want: ConnectionString{HostName: "h.example", DeviceID: "d", SharedAccessKey: "AAAAAAAAAAAAAAAAAAAAAA=="},
		},
		{
			name: "ids with every allowed punctuation",
			s:    "HostName=my_hub-1.example;DeviceId=a-:.+%_#*?!(),=@$'z;ModuleId=m=1;SharedAccessKey=" + testKey,
			want: ConnectionString{HostName: "my_hub-1.example", DeviceID: "a-:.+%_#*?!(),=@$'z", ModuleID: "m=1", SharedAccessKey: testKey},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConnectionString(tt.s)
			if err != nil {
				t.Fatalf("ParseConnectionString = %v", err)
			}
			if diff := cmp.Diff(tt.want, *got); diff != "" {
				t.Errorf("ParseConnectionString (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConnectionStringString(t *testing.T) {
	tests := []struct {
		s, want string
	}{
		{testConnectionString, "HostName=myhub.azure-devices.net;DeviceId=dev-01;SharedAccessKey=REDACTED"},
		{
			"HostName=myhub.azure-devices.net;DeviceId=dev-01;ModuleId=m;SharedAccessKeyName=iothubowner;SharedAccessKey=" + testKey + ";GatewayHostName=gw",
			"HostName=myhub.azure-devices.net;DeviceId=dev-01;ModuleId=m;SharedAccessKeyName=iothubowner;SharedAccessKey=REDACTED;GatewayHostName=gw",
		},
		{
			"HostName=myhub.azure-devices.net;DeviceId=dev-01;SharedAccessSignature=" + wantDeviceToken,
			"HostName=myhub.azure-devices.net;DeviceId=dev-01;SharedAccessSignature=REDACTED",
		},
		{"HostName=h;DeviceId=d;x509=true", "HostName=h;DeviceId=d;x509=true"},
	}
	for _, tt := range tests {
		cs, err := ParseConnectionString(tt.s)
		if err != nil {
			t.Fatalf("ParseConnectionString = %v", err)
		}
		for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
			for _, v := range []any{cs, *cs} {
				if got := fmt.Sprintf(format, v); got != tt.want {
					t.Errorf("Sprintf(%q, %T) = %q, want %q", format, v, got, tt.want)
				}
			}
		}
		wrapped := fmt.Sprintf("%v %+v", []*ConnectionString{cs}, struct{ CS ConnectionString }{*cs})
		assertNoSecret(t, "nested formatting", wrapped, secretsOf(t)...)
	}
}

// logged returns what a JSON and a text handler write for one record
// holding v.
func logged(v any) string {
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("connecting", "value", v)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("connecting", "value", v)
	return buf.String()
}

func TestConnectionStringLogValue(t *testing.T) {
	for _, s := range []string{
		testConnectionString + ";ModuleId=fan-ctl;GatewayHostName=gw",
		"HostName=myhub.azure-devices.net;DeviceId=dev-01;SharedAccessSignature=" + wantDeviceToken,
		"HostName=myhub.azure-devices.net;DeviceId=dev-01;x509=true",
	} {
		cs, err := ParseConnectionString(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []any{cs, *cs} {
			out := logged(v)
			assertNoSecret(t, "log output", out, secretsOf(t)...)
			if !strings.Contains(out, `"device_id":"dev-01"`) || !strings.Contains(out, `"host":"myhub.azure-devices.net"`) {
				t.Errorf("log output %s lacks the identity", out)
			}
		}
	}
	cs, _ := ParseConnectionString(testConnectionString + ";ModuleId=fan-ctl;GatewayHostName=gw")
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: dropTime})).Info("m", "cs", cs)
	want := `{"level":"INFO","msg":"m","cs":{"host":"myhub.azure-devices.net","device_id":"dev-01","module_id":"fan-ctl","gateway":"gw","auth":"key"}}` + "\n"
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("JSON log (-want +got):\n%s", diff)
	}
}

func dropTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

func TestConnectionStringCredential(t *testing.T) {
	t.Run("key", func(t *testing.T) {
		cs, err := ParseConnectionString(testConnectionString)
		if err != nil {
			t.Fatal(err)
		}
		cred, err := cs.Credential(10 * time.Minute)
		if err != nil {
			t.Fatalf("Credential = %v", err)
		}
		kc, ok := cred.(*KeyCredential)
		if !ok {
			t.Fatalf("Credential = %T, want *KeyCredential", cred)
		}
		if kc.lifetime != 10*time.Minute || kc.keyName != "" {
			t.Errorf("KeyCredential lifetime %v, key name %q; want 10m0s and none", kc.lifetime, kc.keyName)
		}
		if cred, _ := cs.Credential(0); cred.(*KeyCredential).lifetime != DefaultTokenLifetime {
			t.Errorf("Credential(0) lifetime = %v, want %v", cred.(*KeyCredential).lifetime, DefaultTokenLifetime)
		}
		if _, err := cs.Credential(-time.Second); err == nil {
			t.Errorf("Credential(-1s) succeeded")
		}
	})
	t.Run("policy key", func(t *testing.T) {
		cs, err := ParseConnectionString(testConnectionString + ";SharedAccessKeyName=iothubowner")
		if err != nil {
			t.Fatal(err)
		}
		cred, err := cs.Credential(0)
		if err != nil {
			t.Fatalf("Credential = %v", err)
		}
		token, _, err := cred.Token(t.Context(), Resource(testHost, "dev-01", ""))
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := ParseToken(token)
		if err != nil {
			t.Fatal(err)
		}
		if parsed.KeyName != "iothubowner" {
			t.Errorf("token key name = %q, want iothubowner", parsed.KeyName)
		}
	})
	t.Run("token", func(t *testing.T) {
		cs, err := ParseConnectionString("HostName=myhub.azure-devices.net;DeviceId=dev-01;SharedAccessSignature=" + wantDeviceToken)
		if err != nil {
			t.Fatal(err)
		}
		cred, err := cs.Credential(0)
		if err != nil {
			t.Fatalf("Credential = %v", err)
		}
		tc, ok := cred.(*TokenCredential)
		if !ok {
			t.Fatalf("Credential = %T, want *TokenCredential", cred)
		}
		if tc.token != wantDeviceToken {
			t.Errorf("TokenCredential holds another token")
		}
	})
	t.Run("x509", func(t *testing.T) {
		cs, err := ParseConnectionString("HostName=myhub.azure-devices.net;DeviceId=dev-01;x509=true")
		if err != nil {
			t.Fatal(err)
		}
		cred, err := cs.Credential(0)
		if !errors.Is(err, ErrNeedCertificate) || cred != nil {
			t.Errorf("Credential = %v, %v; want nil, ErrNeedCertificate", cred, err)
		}
	})
}

func TestDecodeKey(t *testing.T) {
	tests := []struct {
		key  string
		want []byte
		ok   bool
	}{
		{testKey, []byte("local-hub-test-key-0123456789abcdef"), true},
		{"AAAA", []byte{0, 0, 0}, true},
		{"", nil, false},
		{"AAA", nil, false},
		{"ab-_", nil, false},
		{"====", nil, false},
	}
	for _, tt := range tests {
		got, err := DecodeKey(tt.key)
		if (err == nil) != tt.ok || !bytes.Equal(got, tt.want) {
			t.Errorf("DecodeKey(%q) = %q, %v; want %q, ok %v", tt.key, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidKey) {
			t.Errorf("DecodeKey(%q) error %v is not ErrInvalidKey", tt.key, err)
		}
	}
}
