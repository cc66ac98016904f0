package localhub

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestDPSProvisionSymmetricKey registers devices of a symmetric-key group
// and of individual enrollments, with primary and secondary keys, over
// every transport: 202 "assigning" with an operation id and retry-after,
// 202 again for a poll that comes too soon, then 200 "assigned"; the
// device is then in the hub with the key it used, and serves a method.
func TestDPSProvisionSymmetricKey(t *testing.T) {
	t.Parallel()
	h := startDPSHub(t, Options{})
	group, err := h.PutEnrollmentGroup("sensors", EnrollmentSpec{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range dpsTransports {
		for _, tt := range []struct {
			name      string
			secondary bool
			group     bool
		}{
			{"group primary", false, true},
			{"group secondary", true, true},
			{"individual primary", false, false},
			{"individual secondary", true, false},
		} {
			t.Run(tr+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				regID := strings.NewReplacer("/", "-", " ", "-").Replace("dev-" + tr + "-" + tt.name)
				var key, wantGroup string
				if tt.group {
					key, wantGroup = group.PrimaryKey, "sensors"
					if tt.secondary {
						key = group.SecondaryKey
					}
					key = groupDeviceKey(t, key, regID)
				} else {
					e, err := h.PutEnrollment(regID, EnrollmentSpec{DeviceID: "device-of-" + regID})
					if err != nil {
						t.Fatal(err)
					}
					key = e.PrimaryKey
					if tt.secondary {
						key = e.SecondaryKey
					}
				}
				d := newDPSDevice(t, h, tr, regID, dpsToken(t, h.IDScope(), regID, key, time.Now().Add(time.Hour)), nil)

				start := time.Now()
				r := d.register(t, `{"registrationId":"`+regID+`","payload":{"modelId":"dtmi:com:example:Thermostat;1"}}`)
				if r.status != http.StatusAccepted || r.op.Status != statusAssigning || r.retryAfter != time.Second {
					t.Fatalf("register = %v, want 202 assigning with retry-after 1 s", r)
				}
				if !regexp.MustCompile(`^4\.[0-9a-f]{16}\.[0-9a-f-]{36}$`).MatchString(r.op.OperationID) {
					t.Errorf("operation id %q is not of DPS's form", r.op.OperationID)
				}
				if r.op.RegistrationState != nil {
					t.Errorf("the first answer has a registration state: %v", r)
				}
				opID := r.op.OperationID
				if early := d.poll(t, opID); time.Since(start) < time.Second && (early.status != http.StatusAccepted ||
					early.op.RegistrationState == nil || early.op.RegistrationState.Status != statusAssigning) {
					t.Errorf("a poll before retry-after = %v, want 202 assigning with its registration state", early)
				}
				waitRetryAfter(t, r.retryAfter)
				final := d.poll(t, opID)
				deviceID := regID
				if !tt.group {
					deviceID = "device-of-" + regID
				}
				want := operationStatusJSON{OperationID: opID, Status: statusAssigned, RegistrationState: &registrationStateJSON{
					SymmetricKey:   &attestationResultJSON{EnrollmentGroupID: wantGroup},
					RegistrationID: regID, AssignedHub: h.HostName(), DeviceID: deviceID,
					Status: statusAssigned, Substatus: substatusInitial,
				}}
				ignore := cmpopts.IgnoreFields(registrationStateJSON{}, "CreatedDateTimeUTC", "LastUpdatedDateTimeUTC", "ETag")
				if diff := cmp.Diff(want, final.op, ignore); final.status != http.StatusOK || diff != "" {
					t.Fatalf("final poll: status %d, (-want +got):\n%s", final.status, diff)
				}
				st := final.op.RegistrationState
				for _, ts := range []string{st.CreatedDateTimeUTC, st.LastUpdatedDateTimeUTC} {
					if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasSuffix(ts, "Z") {
						t.Errorf("time %q is not UTC RFC 3339", ts)
					}
				}
				if st.ETag == "" {
					t.Error("no etag")
				}
				serveOneMethod(t, h, deviceID, key, nil)
			})
		}
	}
}

// TestDPSProvisionX509 registers X.509 devices, an individual enrollment's
// self-signed certificate and a CA-signed group's certificate, over every
// transport; the device then connects to the hub with the same
// certificate, by thumbprint or because it chains to the group's CA.
func TestDPSProvisionX509(t *testing.T) {
	t.Parallel()
	h := startDPSHub(t, Options{})
	ca, err := NewDeviceCA("test group CA")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.PutEnrollmentGroup("x509-group", EnrollmentSpec{CertificatePEM: ca.CertPEM()}); err != nil {
		t.Fatal(err)
	}
	for _, tr := range dpsTransports {
		for _, group := range []bool{false, true} {
			name := tr + "/individual"
			if group {
				name = tr + "/group"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				regID := strings.ReplaceAll("x509-"+name, "/", "-")
				var cert tls.Certificate
				var err error
				wantResult := &attestationResultJSON{}
				if group {
					if cert, err = ca.Issue(regID); err != nil {
						t.Fatal(err)
					}
					wantResult.EnrollmentGroupID = "x509-group"
				} else {
					var pemCert []byte
					if cert, pemCert, err = NewSelfSignedCertificate(regID); err != nil {
						t.Fatal(err)
					}
					if _, err := h.PutEnrollment(regID, EnrollmentSpec{CertificatePEM: pemCert}); err != nil {
						t.Fatal(err)
					}
				}
				d := newDPSDevice(t, h, tr, regID, "", &cert)
				final := d.provision(t, "")
				if final.status != http.StatusOK || final.op.Status != statusAssigned {
					t.Fatalf("provision = %v", final)
				}
				if diff := cmp.Diff(wantResult, final.op.RegistrationState.X509); diff != "" {
					t.Errorf("x509 (-want +got):\n%s", diff)
				}
				serveOneMethod(t, h, regID, "", &cert)
			})
		}
	}
}

// TestDPSUnauthorized refuses, over every transport, devices that DPS
// cannot attest, with the same 401 body whatever the reason, so that it
// tells nothing of which enrollments exist.
func TestDPSUnauthorized(t *testing.T) {
	t.Parallel()
	h := startDPSHub(t, Options{})
	group, _ := h.PutEnrollmentGroup("g", EnrollmentSpec{})
	disabledGroup, _ := h.PutEnrollmentGroup("g-off", EnrollmentSpec{Disabled: true})
	ind, _ := h.PutEnrollment("ind", EnrollmentSpec{})
	off, _ := h.PutEnrollment("ind-off", EnrollmentSpec{Disabled: true})
	x509Cert, x509PEM, _ := NewSelfSignedCertificate("ind-x509")
	if _, err := h.PutEnrollment("ind-x509", EnrollmentSpec{CertificatePEM: x509PEM}); err != nil {
		t.Fatal(err)
	}
	ca, _ := NewDeviceCA("group CA")
	if _, err := h.PutEnrollmentGroup("g-x509", EnrollmentSpec{CertificatePEM: ca.CertPEM()}); err != nil {
		t.Fatal(err)
	}
	otherCA, _ := NewDeviceCA("someone else's CA")
	strangerCert, _ := otherCA.Issue("stranger")
	wrongCN, _ := ca.Issue("not-the-registration-id")
	otherCert, _, _ := NewSelfSignedCertificate("ind-x509")
	scope := h.IDScope()
	hour := time.Now().Add(time.Hour)
	strangerKey := newEnrollmentKey()
	tests := []struct {
		name, regID string
		token       func() string
		cert        *tls.Certificate
		scope       string
	}{
		{"wrong group key", "member", func() string { return dpsToken(t, scope, "member", strangerKey, hour) }, nil, ""},
		{"group key itself", "member", func() string { return dpsToken(t, scope, "member", group.PrimaryKey, hour) }, nil, ""},
		{"key derived for another id", "member", func() string {
			return dpsToken(t, scope, "member", groupDeviceKey(t, group.PrimaryKey, "other"), hour)
		}, nil, ""},
		{"disabled group", "member-off", func() string {
			return dpsToken(t, scope, "member-off", groupDeviceKey(t, disabledGroup.PrimaryKey, "member-off"), hour)
		}, nil, ""},
		{"wrong individual key", "ind", func() string { return dpsToken(t, scope, "ind", strangerKey, hour) }, nil, ""},
		{"disabled individual", "ind-off", func() string { return dpsToken(t, scope, "ind-off", off.PrimaryKey, hour) }, nil, ""},
		{"individual key of another id", "ind-other", func() string { return dpsToken(t, scope, "ind-other", ind.PrimaryKey, hour) }, nil, ""},
		{"expired token", "ind", func() string { return dpsToken(t, scope, "ind", ind.PrimaryKey, time.Now().Add(-time.Hour)) }, nil, ""},
		{"token for another registration", "ind", func() string { return dpsToken(t, scope, "ind2", ind.PrimaryKey, hour) }, nil, ""},
		{"token of another key name", "ind", func() string {
			return strings.Replace(dpsToken(t, scope, "ind", ind.PrimaryKey, hour), "skn=registration", "skn=registrations", 1)
		}, nil, ""},
		{"unknown ID scope", "ind", func() string { return dpsToken(t, "0ne00000000", "ind", ind.PrimaryKey, hour) }, nil, "0ne00000000"},
		{"garbage token", "ind", func() string { return "SharedAccessSignature nonsense" }, nil, ""},
		{"no credentials", "ind", func() string { return "" }, nil, ""},
		{"key for an X.509 enrollment", "ind-x509", func() string { return dpsToken(t, scope, "ind-x509", strangerKey, hour) }, nil, ""},
		{"certificate of another CA", "stranger", func() string { return "" }, &strangerCert, ""},
		{"certificate CN is another id", "member-cn", func() string { return "" }, &wrongCN, ""},
		{"another self-signed certificate", "ind-x509", func() string { return "" }, &otherCert, ""},
		{"certificate for a key enrollment", "ind", func() string { return "" }, &x509Cert, ""},
	}
	var bodies []dpsErrorBody
	for _, tr := range dpsTransports {
		for _, tt := range tests {
			d := newDPSDevice(t, h, tr, tt.regID, tt.token(), tt.cert)
			if tt.scope != "" {
				d.idScope = tt.scope
			}
			r := d.register(t, "")
			if r.status != http.StatusUnauthorized {
				t.Errorf("%s over %s: register = %v, want 401", tt.name, tr, r)
				continue
			}
			bodies = append(bodies, r.err)
			if p := d.poll(t, "4.0000000000000000.00000000-0000-0000-0000-000000000000"); p.status != http.StatusUnauthorized {
				t.Errorf("%s over %s: poll = %v, want 401", tt.name, tr, p)
			}
		}
	}
	for _, b := range bodies {
		if b.ErrorCode != 401002 || b.Message != "Unauthorized" || b.TrackingID == "" {
			t.Errorf("401 body %+v, want errorCode 401002, message Unauthorized, a trackingId", b)
		}
		if _, err := time.Parse(time.RFC3339Nano, b.TimestampUTC); err != nil {
			t.Errorf("timestampUtc %q: %v", b.TimestampUTC, err)
		}
	}
}

// TestDPSRegisterAgain registers a device twice: the same device and hub,
// the same creation time, a new etag; the substatus of the second
// registration depends on the api-version.
func TestDPSRegisterAgain(t *testing.T) {
	t.Parallel()
	h := startDPSHub(t, Options{})
	g, _ := h.PutEnrollmentGroup("g", EnrollmentSpec{})
	for _, tt := range []struct{ apiVersion, wantSecond string }{
		{"2019-03-31", substatusInitial},
		{"2021-06-01", substatusReprovisioned},
	} {
		t.Run(tt.apiVersion, func(t *testing.T) {
			t.Parallel()
			regID := "again-" + tt.apiVersion
			token := dpsToken(t, h.IDScope(), regID, groupDeviceKey(t, g.PrimaryKey, regID), time.Now().Add(time.Hour))
			var states []*registrationStateJSON
			for _, tr := range []string{"https", "mqtt"} {
				d := newDPSDevice(t, h, tr, regID, token, nil)
				d.apiVersion = tt.apiVersion
				r := d.provision(t, "")
				if r.status != http.StatusOK {
					t.Fatalf("provision over %s = %v", tr, r)
				}
				states = append(states, r.op.RegistrationState)
			}
			first, second := states[0], states[1]
			if first.Substatus != substatusInitial || second.Substatus != tt.wantSecond {
				t.Errorf("substatus %q then %q, want %q then %q", first.Substatus, second.Substatus, substatusInitial, tt.wantSecond)
			}
			if first.DeviceID != second.DeviceID || first.AssignedHub != second.AssignedHub || first.CreatedDateTimeUTC != second.CreatedDateTimeUTC {
				t.Errorf("second registration %+v differs from the first %+v", second, first)
			}
			if first.ETag == second.ETag || first.LastUpdatedDateTimeUTC == second.LastUpdatedDateTimeUTC {
				t.Errorf("second registration kept the etag or update time: %+v", second)
			}
		})
	}
}

// TestDPSDeviceAlreadyInHub reports a first registration of a device the
// hub has already as reprovisionedToInitialAssignment, from api-version
// 2019-04-15 on; the device then has the enrollment's key.
func TestDPSDeviceAlreadyInHub(t *testing.T) {
	t.Parallel()
	h := startDPSHub(t, Options{Devices: []string{"old-1", "old-2"}})
	for _, tt := range []struct{ regID, apiVersion, want string }{
		{"old-1", "2019-03-31", substatusInitial},
		{"old-2", "2021-10-01", substatusReprovisioned},
	} {
		e, err := h.PutEnrollment(tt.regID, EnrollmentSpec{})
		if err != nil {
			t.Fatal(err)
		}
		d := newDPSDevice(t, h, "https", tt.regID, dpsToken(t, h.IDScope(), tt.regID, e.PrimaryKey, time.Now().Add(time.Hour)), nil)
		d.apiVersion = tt.apiVersion
		if r := d.provision(t, ""); r.status != http.StatusOK || r.op.RegistrationState.Substatus != tt.want {
			t.Errorf("%s at %s: %v, want %s", tt.regID, tt.apiVersion, r, tt.want)
		}
		if cs, _ := h.ConnectionString(tt.regID); !strings.HasSuffix(cs, ";SharedAccessKey="+e.PrimaryKey) {
			t.Errorf("%s's connection string %s does not have the enrollment's key", tt.regID, cs)
		}
	}
}

// TestDPSThrottled refuses registrations beyond the configured rate with
// 429 and a retry-after, over HTTPS and MQTT.
func TestDPSThrottled(t *testing.T) {
	t.Parallel()
	h := startDPSHub(t, Options{DPS: DPSOptions{RegistrationsPerMinute: 2}})
	g, _ := h.PutEnrollmentGroup("g", EnrollmentSpec{})
	var replies []dpsReply
	for i, tr := range []string{"https", "mqtt", "https", "mqtt-ws"} {
		regID := "throttled-" + string(rune('a'+i))
		d := newDPSDevice(t, h, tr, regID, dpsToken(t, h.IDScope(), regID, groupDeviceKey(t, g.PrimaryKey, regID), time.Now().Add(time.Hour)), nil)
		replies = append(replies, d.register(t, ""))
	}
	for i, r := range replies {
		if i < 2 {
			if r.status != http.StatusAccepted {
				t.Errorf("registration %d = %v, want 202", i, r)
			}
			continue
		}
		// A token a minute: the next in 30 s.
		if r.status != http.StatusTooManyRequests || r.err.ErrorCode != 429001 || r.retryAfter < 20*time.Second || r.retryAfter > 30*time.Second {
			t.Errorf("registration %d = %v, want 429 429001 with a retry-after of about 30 s", i, r)
		}
	}
}

// TestDPSAPIVersion refuses api-versions DPS does not serve with 400
// 400004, over HTTPS (query) and MQTT (username).
func TestDPSAPIVersion(t *testing.T) {
	t.Parallel()
	h := startDPSHub(t, Options{})
	ind, _ := h.PutEnrollment("ind", EnrollmentSpec{})
	token := dpsToken(t, h.IDScope(), "ind", ind.PrimaryKey, time.Now().Add(time.Hour))
	for _, tr := range dpsTransports {
		for _, v := range []string{"2018-09-01-preview", "2020-09-30", "nonsense"} {
			d := newDPSDevice(t, h, tr, "ind", token, nil)
			d.apiVersion = v
			r := d.register(t, "")
			if r.status != http.StatusBadRequest || r.err.ErrorCode != 400004 || r.err.Message != "Unsupported API version "+v+"." {
				t.Errorf("api-version %s over %s: %v", v, tr, r)
			}
		}
	}
}

// TestDPSBadRegistrationBody refuses registration bodies DPS cannot take.
func TestDPSBadRegistrationBody(t *testing.T) {
	t.Parallel()
	h := startDPSHub(t, Options{})
	ind, _ := h.PutEnrollment("ind", EnrollmentSpec{})
	token := dpsToken(t, h.IDScope(), "ind", ind.PrimaryKey, time.Now().Add(time.Hour))
	for _, tr := range dpsTransports {
		for _, body := range []string{`[]`, `{"registrationId":"someone-else"}`, `{"payload":`, `{"tpm":{"endorsementKey":"x"}}`, `"ind"`} {
			d := newDPSDevice(t, h, tr, "ind", token, nil)
			if r := d.register(t, body); r.status != http.StatusBadRequest || r.err.Message == "" {
				t.Errorf("body %s over %s: %v, want 400 with a message", body, tr, r)
			}
		}
		for _, body := range []string{``, `{}`, `{"registrationId":"IND"}`, `{"registrationId":"ind","payload":null}`} {
			d := newDPSDevice(t, h, tr, "ind", token, nil)
			if r := d.register(t, body); r.status != http.StatusAccepted {
				t.Errorf("body %q over %s: %v, want 202", body, tr, r)
			}
		}
	}
}

// TestDPSUnknownOperation answers 404 to a poll of an operation the
// device does not have.
func TestDPSUnknownOperation(t *testing.T) {
	t.Parallel()
	h := startDPSHub(t, Options{})
	a, _ := h.PutEnrollment("a", EnrollmentSpec{})
	b, _ := h.PutEnrollment("b", EnrollmentSpec{})
	da := newDPSDevice(t, h, "https", "a", dpsToken(t, h.IDScope(), "a", a.PrimaryKey, time.Now().Add(time.Hour)), nil)
	r := da.register(t, "")
	if r.status != http.StatusAccepted {
		t.Fatalf("register = %v", r)
	}
	for _, tr := range dpsTransports {
		db := newDPSDevice(t, h, tr, "b", dpsToken(t, h.IDScope(), "b", b.PrimaryKey, time.Now().Add(time.Hour)), nil)
		for _, op := range []string{r.op.OperationID, "4.0.unknown"} {
			if p := db.poll(t, op); p.status != http.StatusNotFound || p.err.ErrorCode != 404201 {
				t.Errorf("poll of %s by another device over %s = %v, want 404", op, tr, p)
			}
		}
	}
}

// TestDPSCustomAllocation calls an enrollment's webhook with the device's
// payload and returns the webhook's payload to the device; a failing
// webhook fails the registration.
func TestDPSCustomAllocation(t *testing.T) {
	t.Parallel()
	h := startDPSHub(t, Options{})
	// The webhook runs on the test server's goroutines.
	var mu sync.Mutex
	var calls []allocationRequestJSON
	answer := `{"iotHubHostName":"localhost","initialTwin":{"tags":{"kind":"thermostat"}},"payload":{"region":"eu","slot":7}}`
	status := http.StatusOK
	hook := newWebhookServer(t, func(req allocationRequestJSON) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, req)
		return status, answer
	})
	requests := func() []allocationRequestJSON {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(calls)
	}
	g, err := h.PutEnrollmentGroup("custom", EnrollmentSpec{WebhookURL: hook})
	if err != nil {
		t.Fatal(err)
	}
	regID := "custom-1"
	token := dpsToken(t, h.IDScope(), regID, groupDeviceKey(t, g.PrimaryKey, regID), time.Now().Add(time.Hour))
	d := newDPSDevice(t, h, "mqtt", regID, token, nil)
	r := d.provision(t, `{"registrationId":"custom-1","payload":{"modelId":"dtmi:com:example:Thermostat;1"}}`)
	if r.status != http.StatusOK || r.op.Status != statusAssigned || string(r.op.RegistrationState.Payload) != `{"region":"eu","slot":7}` {
		t.Fatalf("provision = %v, want assigned with the webhook's payload", r)
	}
	got := requests()
	if len(got) != 1 {
		t.Fatalf("webhook called %d times", len(got))
	}
	req := got[0]
	if req.EnrollmentGroup == nil || req.EnrollmentGroup.EnrollmentGroupID != "custom" || req.EnrollmentGroup.Attestation.SymmetricKey != nil ||
		!strings.HasSuffix(req.EnrollmentGroup.CustomAllocationDefinition.WebhookURL, "/api/allocate?****") {
		t.Errorf("enrollment group in the request: %+v (keys and the webhook's key must not be sent)", req.EnrollmentGroup)
	}
	rc := req.DeviceRuntimeContext
	if rc.RegistrationID != regID || string(rc.Payload) != `{"modelId":"dtmi:com:example:Thermostat;1"}` || rc.SymmetricKey == nil || rc.CurrentIoTHubHostName != "" {
		t.Errorf("deviceRuntimeContext %+v", rc)
	}
	if diff := cmp.Diff([]string{h.HostName()}, req.LinkedHubs); diff != "" {
		t.Errorf("linkedHubs (-want +got):\n%s", diff)
	}

	// Registering again tells the webhook where the device is.
	if r, got := d.provision(t, ""), requests(); r.status != http.StatusOK || len(got) != 2 || got[1].DeviceRuntimeContext.CurrentDeviceID != regID ||
		got[1].DeviceRuntimeContext.CurrentIoTHubHostName != h.HostName() {
		t.Errorf("second registration %v, webhook requests %+v", r, got)
	}

	for _, tt := range []struct {
		name   string
		status int
		answer string
	}{
		{"webhook fails", http.StatusInternalServerError, `{}`},
		{"webhook names another hub", http.StatusOK, `{"iotHubHostName":"elsewhere.azure-devices.net"}`},
		{"webhook answers no JSON", http.StatusOK, `hello`},
		{"webhook unreachable", 0, ``},
	} {
		mu.Lock()
		status, answer = tt.status, tt.answer
		mu.Unlock()
		r := d.provision(t, "")
		if r.status != http.StatusOK || r.op.Status != statusFailed || r.op.RegistrationState.ErrorMessage == "" || r.op.RegistrationState.ErrorCode == 0 {
			t.Errorf("%s: provision = %v, want 200 failed with an error", tt.name, r)
		}
		if strings.Contains(string(r.body), "secret") || strings.Contains(string(r.body), "127.0.0.1") {
			t.Errorf("%s: the answer tells the device the webhook's address or key: %s", tt.name, r.body)
		}
	}
}

// newWebhookServer serves a custom allocation webhook on loopback.
func newWebhookServer(t testing.TB, answer func(allocationRequestJSON) (int, string)) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req allocationRequestJSON
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Errorf("webhook request: %v", err)
		}
		status, body := answer(req)
		if status == 0 {
			panic(http.ErrAbortHandler) // the connection ends without an answer
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/api/allocate?code=secret"
}
