package sas

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/internal/idcheck"
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
		if err := idcheck.HostName(cs.HostName); err != nil {
			t.Errorf("accepted host name %q: %v", cs.HostName, err)
		}
		if err := idcheck.ID(cs.DeviceID); err != nil {
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
