package localhub

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/directmethods/iotdevice/sas"
)

// serviceToken signs a token for the DPS service API with the key of
// DPSServicePolicy (or of keyName with key).
func serviceToken(t testing.TB, h *Hub, keyName string, expiry time.Time) string {
	t.Helper()
	_, encoded, ok := strings.Cut(h.DPSConnectionString(), ";SharedAccessKey=")
	if !ok {
		t.Fatalf("no key in %s", h.DPSConnectionString())
	}
	key, err := sas.DecodeKey(encoded)
	if err != nil {
		t.Fatal(err)
	}
	return sas.Sign(key, h.HostName(), keyName, expiry)
}

// dpsServiceCall is a request to the service API.
type dpsServiceCall struct {
	method, path, body string
	apiVersion         string // default 2021-10-01
	token              string // default a provisioningserviceowner token; "-" for none
	ifMatch            string
}

// do sends a service API request and returns the status and body.
func (c dpsServiceCall) do(t testing.TB, h *Hub) (int, []byte) {
	t.Helper()
	if c.apiVersion == "" {
		c.apiVersion = "2021-10-01"
	}
	switch c.token {
	case "":
		c.token = serviceToken(t, h, DPSServicePolicy, time.Now().Add(time.Hour))
	case "-":
		c.token = ""
	}
	req, err := http.NewRequestWithContext(t.Context(), c.method, "https://"+h.HTTPSAddr()+c.path+"?api-version="+c.apiVersion, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", c.token)
	}
	if c.ifMatch != "" {
		req.Header.Set("If-Match", c.ifMatch)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	status, _, b := roundTrip(t, h.ServiceClient().client, req)
	return status, b
}

// decodeDoc decodes an enrollment.
func decodeDoc(t testing.TB, b []byte) enrollmentDoc {
	t.Helper()
	var doc enrollmentDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("enrollment %s: %v", b, err)
	}
	return doc
}

// TestDPSServiceEnrollments creates, reads, updates and deletes individual
// enrollments and groups as the official service SDKs do, with etags.
func TestDPSServiceEnrollments(t *testing.T) {
	t.Parallel()
	h := startDPSHub(t, Options{})
	for _, tt := range []struct {
		collection, idField string
	}{{"/enrollments/", "registrationId"}, {"/enrollmentGroups/", "enrollmentGroupId"}} {
		path := tt.collection + "item-1"
		// Keys are generated when omitted: 64 bytes, as DPS generates them.
		status, b := dpsServiceCall{method: "PUT", path: path, body: `{"` + tt.idField + `":"item-1","attestation":{"type":"symmetricKey"}}`}.do(t, h)
		if status != http.StatusOK {
			t.Fatalf("PUT %s = %d %s", path, status, b)
		}
		created := decodeDoc(t, b)
		for _, k := range []string{created.Attestation.SymmetricKey.PrimaryKey, created.Attestation.SymmetricKey.SecondaryKey} {
			if raw, err := base64.StdEncoding.DecodeString(k); err != nil || len(raw) != 64 {
				t.Errorf("generated key %q: %d bytes, %v", k, len(raw), err)
			}
		}
		if created.ETag == "" || created.ProvisioningStatus != provisioningEnabled || created.CreatedDateTimeUTC == "" || created.LastUpdatedDateTimeUTC == "" {
			t.Errorf("created %+v lacks the server's fields", created)
		}
		status, b = dpsServiceCall{method: "GET", path: path}.do(t, h)
		if diff := cmp.Diff(created, decodeDoc(t, b)); status != http.StatusOK || diff != "" {
			t.Errorf("GET %s = %d, (-created +got):\n%s", path, status, diff)
		}

		// An update with the current etag; then the old one is stale.
		created.ProvisioningStatus = provisioningDisabled
		body, _ := json.Marshal(created)
		status, b = dpsServiceCall{method: "PUT", path: path, body: string(body), ifMatch: created.ETag}.do(t, h)
		updated := decodeDoc(t, b)
		if status != http.StatusOK || updated.ProvisioningStatus != provisioningDisabled || updated.ETag == created.ETag ||
			updated.CreatedDateTimeUTC != created.CreatedDateTimeUTC || updated.Attestation.SymmetricKey.PrimaryKey != created.Attestation.SymmetricKey.PrimaryKey {
			t.Errorf("update = %d %+v", status, updated)
		}
		for _, c := range []dpsServiceCall{
			{method: "PUT", path: path, body: string(body), ifMatch: created.ETag},
			{method: "DELETE", path: path, ifMatch: created.ETag},
			{method: "PUT", path: tt.collection + "absent", body: `{"attestation":{"type":"symmetricKey"}}`, ifMatch: "*"},
		} {
			if status, b := c.do(t, h); status != http.StatusPreconditionFailed || !strings.Contains(string(b), "412002") {
				t.Errorf("%s %s with If-Match %s = %d %s, want 412", c.method, c.path, c.ifMatch, status, b)
			}
		}
		if status, b := (dpsServiceCall{method: "PUT", path: path, body: string(body), ifMatch: "*"}).do(t, h); status != http.StatusOK {
			t.Errorf("PUT with If-Match * = %d %s", status, b)
		}
		if status, _ := (dpsServiceCall{method: "DELETE", path: path}).do(t, h); status != http.StatusNoContent {
			t.Errorf("DELETE = %d, want 204", status)
		}
		for _, method := range []string{"GET", "DELETE"} {
			if status, b := (dpsServiceCall{method: method, path: path}).do(t, h); status != http.StatusNotFound || !strings.Contains(string(b), "404201") {
				t.Errorf("%s of a deleted enrollment = %d %s, want 404 404201", method, status, b)
			}
		}
	}
}

// TestDPSServiceX509 takes certificates in PEM or base64 and gives back
// their info only.
func TestDPSServiceX509(t *testing.T) {
	t.Parallel()
	h := startDPSHub(t, Options{})
	ca, _ := NewDeviceCA("signing CA")
	_, devicePEM, _ := NewSelfSignedCertificate("x509-dev")
	for _, tt := range []struct {
		path, attestation, subject string
	}{
		{"/enrollments/x509-dev", `{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":` + quoteJSON(string(devicePEM)) + `}}}}`, "CN=x509-dev"},
		{"/enrollmentGroups/x509-group", `{"type":"x509","x509":{"signingCertificates":{"primary":{"certificate":"` + base64.StdEncoding.EncodeToString(ca.CertPEM()) + `"}}}}`, "CN=signing CA,O=localhub device CA"},
	} {
		status, b := dpsServiceCall{method: "PUT", path: tt.path, body: `{"attestation":` + tt.attestation + `}`}.do(t, h)
		if status != http.StatusOK {
			t.Fatalf("PUT %s = %d %s", tt.path, status, b)
		}
		doc := decodeDoc(t, b)
		certs := doc.Attestation.X509.ClientCertificates
		if strings.HasPrefix(tt.path, "/enrollmentGroups/") {
			certs = doc.Attestation.X509.SigningCertificates
		}
		if certs == nil || certs.Primary == nil || certs.Primary.Certificate != "" || certs.Primary.Info == nil ||
			certs.Primary.Info.SubjectName != tt.subject || len(certs.Primary.Info.SHA256Thumbprint) != 64 || certs.Secondary != nil {
			t.Errorf("PUT %s gave back %s", tt.path, b)
		}
	}
}

func quoteJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestDPSServiceRefused refuses requests the service API cannot serve:
// unauthorized ones (401), unsupported api-versions (400004), methods it
// does not serve (405), bad enrollments (400).
func TestDPSServiceRefused(t *testing.T) {
	t.Parallel()
	h := startDPSHub(t, Options{})
	sym := `{"attestation":{"type":"symmetricKey"}}`
	hubToken := sas.Sign([]byte("not the key"), h.HostName(), ServicePolicy, time.Now().Add(time.Hour))
	tests := []struct {
		name       string
		call       dpsServiceCall
		wantStatus int
		wantCode   int
	}{
		{"no token", dpsServiceCall{method: "GET", path: "/enrollments/a", token: "-"}, 401, 401002},
		{"hub's policy", dpsServiceCall{method: "GET", path: "/enrollments/a", token: hubToken}, 401, 401002},
		{"expired", dpsServiceCall{method: "GET", path: "/enrollments/a", token: serviceToken(t, h, DPSServicePolicy, time.Now().Add(-time.Hour))}, 401, 401002},
		{"device token", dpsServiceCall{method: "GET", path: "/enrollments/a", token: dpsToken(t, h.IDScope(), "a", newEnrollmentKey(), time.Now().Add(time.Hour))}, 401, 401002},
		{"no api-version", dpsServiceCall{method: "GET", path: "/enrollments/a", apiVersion: "x&y=z"}, 400, 400004},
		{"old api-version", dpsServiceCall{method: "GET", path: "/enrollments/a", apiVersion: "2017-08-31-preview"}, 400, 400004},
		{"POST", dpsServiceCall{method: "POST", path: "/enrollments/a", body: sym}, 405, 405000},
		{"PUT a registration", dpsServiceCall{method: "PUT", path: "/registrations/a", body: sym}, 405, 405000},
		{"not JSON", dpsServiceCall{method: "PUT", path: "/enrollments/a", body: `{`}, 400, 400000},
		{"no attestation", dpsServiceCall{method: "PUT", path: "/enrollments/a", body: `{}`}, 400, 400000},
		{"TPM", dpsServiceCall{method: "PUT", path: "/enrollments/a", body: `{"attestation":{"type":"tpm","tpm":{"endorsementKey":"x"}}}`}, 400, 400000},
		{"id differs", dpsServiceCall{method: "PUT", path: "/enrollments/a", body: `{"registrationId":"b","attestation":{"type":"symmetricKey"}}`}, 400, 400000},
		{"invalid id", dpsServiceCall{method: "PUT", path: "/enrollments/-a", body: sym}, 400, 400000},
		{"short key", dpsServiceCall{method: "PUT", path: "/enrollments/a", body: `{"attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"AAAA"}}}`}, 400, 400000},
		{"bad status", dpsServiceCall{method: "PUT", path: "/enrollments/a", body: `{"attestation":{"type":"symmetricKey"},"provisioningStatus":"off"}`}, 400, 400000},
		{"other hub", dpsServiceCall{method: "PUT", path: "/enrollments/a", body: `{"attestation":{"type":"symmetricKey"},"iotHubs":["other.azure-devices.net"]}`}, 400, 400000},
		{"custom without webhook", dpsServiceCall{method: "PUT", path: "/enrollments/a", body: `{"attestation":{"type":"symmetricKey"},"allocationPolicy":"custom"}`}, 400, 400000},
		{"http webhook elsewhere", dpsServiceCall{method: "PUT", path: "/enrollments/a", body: `{"attestation":{"type":"symmetricKey"},"allocationPolicy":"custom","customAllocationDefinition":{"webhookUrl":"http://example.com/x","apiVersion":"2021-10-01"}}`}, 400, 400000},
		{"group with deviceId", dpsServiceCall{method: "PUT", path: "/enrollmentGroups/g", body: `{"deviceId":"d","attestation":{"type":"symmetricKey"}}`}, 400, 400000},
		{"group with client certificates", dpsServiceCall{method: "PUT", path: "/enrollmentGroups/g", body: `{"attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":"x"}}}}}`}, 400, 400000},
		{"garbage certificate", dpsServiceCall{method: "PUT", path: "/enrollments/a", body: `{"attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":"bm90IGEgY2VydA=="}}}}}`}, 400, 400000},
		{"unknown registration", dpsServiceCall{method: "GET", path: "/registrations/nobody"}, 404, 404201},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, b := tt.call.do(t, h)
			var body dpsErrorBody
			if err := json.Unmarshal(b, &body); err != nil || status != tt.wantStatus || body.ErrorCode != tt.wantCode || body.Message == "" {
				t.Errorf("%s %s = %d %s, want %d with errorCode %d", tt.call.method, tt.call.path, status, b, tt.wantStatus, tt.wantCode)
			}
		})
	}
}

// TestDPSServiceRegistrations reads and deletes a device's registration
// state; once deleted, DPS registers the device anew, as one it finds in
// the hub already.
func TestDPSServiceRegistrations(t *testing.T) {
	t.Parallel()
	h := startDPSHub(t, Options{})
	ind, _ := h.PutEnrollment("reg-1", EnrollmentSpec{})
	d := newDPSDevice(t, h, "https", "reg-1", dpsToken(t, h.IDScope(), "reg-1", ind.PrimaryKey, time.Now().Add(time.Hour)), nil)
	d.apiVersion = "2021-10-01"
	final := d.provision(t, "")
	if final.status != http.StatusOK {
		t.Fatalf("provision = %v", final)
	}
	status, b := dpsServiceCall{method: "GET", path: "/registrations/reg-1"}.do(t, h)
	var st registrationStateJSON
	if err := json.Unmarshal(b, &st); err != nil || status != http.StatusOK {
		t.Fatalf("GET registration = %d %s", status, b)
	}
	want := *final.op.RegistrationState
	want.SymmetricKey = nil
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("registration state (-want +got):\n%s", diff)
	}
	status, b = dpsServiceCall{method: "GET", path: "/enrollments/reg-1"}.do(t, h)
	if doc := decodeDoc(t, b); status != http.StatusOK || doc.RegistrationState == nil || doc.RegistrationState.DeviceID != "reg-1" {
		t.Errorf("the enrollment's registration state: %d %s", status, b)
	}
	if status, b := (dpsServiceCall{method: "DELETE", path: "/registrations/reg-1", ifMatch: "\"stale\""}).do(t, h); status != http.StatusPreconditionFailed {
		t.Errorf("DELETE with a stale etag = %d %s", status, b)
	}
	if status, b := (dpsServiceCall{method: "DELETE", path: "/registrations/reg-1", ifMatch: st.ETag}).do(t, h); status != http.StatusNoContent {
		t.Errorf("DELETE = %d %s", status, b)
	}
	if again := d.provision(t, ""); again.status != http.StatusOK || again.op.RegistrationState.Substatus != substatusReprovisioned ||
		again.op.RegistrationState.CreatedDateTimeUTC == st.CreatedDateTimeUTC {
		t.Errorf("registration after its record was deleted = %v, want a new record, %s", again, substatusReprovisioned)
	}
}
