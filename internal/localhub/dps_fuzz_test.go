package localhub

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
)

func FuzzDecodeEnrollment(f *testing.F) {
	_, devicePEM, err := NewSelfSignedCertificate("dev")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		`{"registrationId":"a","attestation":{"type":"symmetricKey"}}`,
		`{"enrollmentGroupId":"a","attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"AAAAAAAAAAAAAAAAAAAAAA==","secondaryKey":""}},"provisioningStatus":"disabled"}`,
		`{"attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":` + quoteJSON(string(devicePEM)) + `}}}}}`,
		`{"attestation":{"type":"x509","x509":{"signingCertificates":{"primary":{"certificate":"LS0t"}}}}}`,
		`{"attestation":{"type":"symmetricKey"},"allocationPolicy":"custom","customAllocationDefinition":{"webhookUrl":"http://127.0.0.1:1/x","apiVersion":"2021-10-01"},"iotHubs":["localhost"],"initialTwin":{"tags":{}}}`,
		`{"attestation":{"type":"tpm","tpm":{}}}`,
		`{"attestation":null}`, `[]`, `null`, `{`,
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, group bool) {
		e, err := decodeEnrollment(body, group, "a", "localhost")
		if err != nil {
			if !errors.Is(err, errBadEnrollment) {
				t.Fatalf("error %v does not wrap errBadEnrollment", err)
			}
			return
		}
		if e.group != group || !strings.EqualFold(e.id(), "a") || e.doc.ProvisioningStatus == "" {
			t.Fatalf("decoded %+v", e.doc)
		}
		if e.symmetricKey() && len(e.keys) != 2 || !e.symmetricKey() && len(e.certs) == 0 {
			t.Fatalf("enrollment without its keys or certificates: %+v", e.doc)
		}
		// What is stored decodes again to the same enrollment, as after a
		// restart.
		stored, err := json.Marshal(e.doc)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeEnrollment(stored, group, "a", "localhost")
		if err != nil {
			t.Fatalf("the stored enrollment %s is refused: %v", stored, err)
		}
		if again2, _ := json.Marshal(again.doc); string(again2) != string(stored) {
			t.Fatalf("stored %s, decoded again %s", stored, again2)
		}
		_ = e.view(nil)
	})
}

func FuzzDecodeRegistrationBody(f *testing.F) {
	for _, seed := range []string{
		``, ` `, `{}`, `{"registrationId":"dev"}`, `{"registrationId":"DEV","payload":{"modelId":"dtmi:a:b;1"}}`,
		`{"payload":null}`, `{"payload":[1,2]}`, `{"tpm":{"endorsementKey":"x"}}`, `{"registrationId":5}`, `[]`, `{`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		payload, err := decodeRegistrationBody(body, "dev")
		if err != nil {
			return
		}
		if payload != nil && (!json.Valid(payload) || string(payload) == "null") {
			t.Fatalf("payload %q", payload)
		}
	})
}

func FuzzParseDPSPath(f *testing.F) {
	for _, seed := range []string{
		"/0ne00000001/registrations/dev/register",
		"/0ne00000001/registrations/dev/operations/4.abc.def",
		"/enrollments/dev", "/enrollmentgroups/g", "/ENROLLMENTGROUPS/g", "/registrations/dev",
		"/0ne00000001/registrations/d%2Fe/register", "/enrollments/", "//registrations/x/register",
		"/twins/dev/methods", "/enrollments/a/b", "/%zz/registrations/a/register", "",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, path string) {
		p, ok := parseDPSPath(path)
		if !ok {
			return
		}
		if p.kind < dpsRegisterPath || p.kind > dpsRegistrationPath || p.id == "" {
			t.Fatalf("parsed %q as %+v", path, p)
		}
		if (p.kind == dpsRegisterPath || p.kind == dpsOperationPath) != (p.idScope != "") || (p.kind == dpsOperationPath) != (p.operationID != "") {
			t.Fatalf("parsed %q as %+v", path, p)
		}
		// The path rebuilt from its parts parses the same.
		rebuilt := "/" + url.PathEscape(p.idScope) + "/registrations/" + url.PathEscape(p.id)
		switch p.kind {
		case dpsRegisterPath:
			rebuilt += "/register"
		case dpsOperationPath:
			rebuilt += "/operations/" + url.PathEscape(p.operationID)
		default:
			return
		}
		if again, ok := parseDPSPath(rebuilt); !ok || again != p {
			t.Fatalf("%q parsed as %+v, rebuilt %q as %+v", path, p, rebuilt, again)
		}
	})
}

func FuzzDecodeAllocationAnswer(f *testing.F) {
	for _, seed := range []string{
		`{"iotHubHostName":"localhost","payload":{"a":1}}`,
		`{"iotHubHostName":"LOCALHOST","initialTwin":{"tags":{"x":1}},"payload":null}`,
		`{"iotHubHostName":"other"}`, `{}`, `[]`, `hello`,
	} {
		f.Add(200, []byte(seed))
	}
	f.Add(500, []byte(`{}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		payload, err := decodeAllocationAnswer(status, body, "localhost")
		if err != nil {
			return
		}
		if status < 200 || status > 299 || payload != nil && !json.Valid(payload) {
			t.Fatalf("accepted status %d, payload %q", status, payload)
		}
	})
}
