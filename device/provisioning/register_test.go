package provisioning

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/internal/mqttwire"
	"github.com/directmethods/iotdevice/internal/sastoken"
	"github.com/directmethods/iotdevice/internal/testcert"
	"github.com/google/go-cmp/cmp"
)

const (
	testScope = "0ne00AB12CD"
	testRegID = "sensor-7"
)

var testKey = []byte("provisioning-test-key-32-bytes!!")

func testKeyB64() string { return base64.StdEncoding.EncodeToString(testKey) }

const (
	assigning = `{"operationId":"4.op1","status":"assigning"}`
	assigned  = `{"operationId":"4.op1","status":"assigned","registrationState":{"registrationId":"sensor-7",` +
		`"createdDateTimeUtc":"2026-12-04T10:00:00Z","assignedHub":"hub-7.azure-devices.net","deviceId":"sensor-7",` +
		`"status":"assigned","substatus":"initialAssignment","lastUpdatedDateTimeUtc":"2026-12-04T10:00:01Z","etag":"IjEi",` +
		`"payload":{"tier":"gold"}}}`
)

// wantResult is the Result of assigned.
var wantResult = &Result{
	AssignedHub: "hub-7.azure-devices.net", DeviceID: "sensor-7", RegistrationID: "sensor-7",
	Status: "assigned", Substatus: "initialAssignment",
	CreatedDateTimeUTC: "2026-12-04T10:00:00Z", LastUpdatedDateTimeUTC: "2026-12-04T10:00:01Z",
	ETag: "IjEi", Payload: json.RawMessage(`{"tier":"gold"}`),
}

// assignAfterPoll answers a registration 202 (with retryAfter) and the
// poll of its operation 200 assigned.
func assignAfterPoll(retryAfter int) func(dpsRequest) []reply {
	return func(r dpsRequest) []reply {
		if r.Kind == mqttwire.DPSRegister {
			return []reply{{status: 202, retryAfter: retryAfter, body: assigning}}
		}
		return []reply{{status: 200, body: assigned}}
	}
}

func register(t *testing.T, c *Client) (*Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	return c.Register(ctx)
}

func symmetricClient(t *testing.T, d *scriptedDPS, tweak func(*Options)) *Client {
	t.Helper()
	o := d.options()
	if tweak != nil {
		tweak(o)
	}
	c, err := NewSymmetricKeyClient(testScope, testRegID, testKeyB64(), o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRegisterAssigned: the CONNECT, the subscription and the requests
// are DPS's, the poll waits the retry-after of the 202, and the
// registration state comes back as the Result.
func TestRegisterAssigned(t *testing.T) {
	d := startDPS(t, dpsScript{answer: assignAfterPoll(1)})
	c := symmetricClient(t, d, func(o *Options) {
		o.ModelID = "dtmi:com:example:Thermostat;1"
		o.Payload = json.RawMessage(`{"site":"north"}`)
	})
	got, err := register(t, c)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if diff := cmp.Diff(wantResult, got); diff != "" {
		t.Errorf("Result (-want +got):\n%s", diff)
	}

	info := receive(t, d.connects, "the CONNECT")
	p := info.packet
	type connect struct {
		ClientID, Username string
		Clean              bool
		Filters            []string
		QoS                []byte
	}
	if diff := cmp.Diff(connect{testRegID, testScope + "/registrations/" + testRegID + "/api-version=2019-03-31&ClientVersion=iotdevice-go%2F0.1", true, []string{"$dps/registrations/res/#"}, []byte{1}},
		connect{p.ClientIdentifier, p.Username, p.CleanSession, info.filters, info.qos}); diff != "" {
		t.Errorf("CONNECT and SUBSCRIBE (-want +got):\n%s", diff)
	}
	tok, err := sastoken.Parse(string(p.Password))
	if err != nil {
		t.Fatalf("password is not a SAS token: %v", err)
	}
	if err := tok.Verify(testKey, time.Now()); err != nil {
		t.Errorf("token does not verify with the device key: %v", err)
	}
	if tok.Resource != testScope+"/registrations/"+testRegID || tok.KeyName != "registration" {
		t.Errorf("token resource %q, key name %q; want %s/registrations/%s and registration", tok.Resource, tok.KeyName, testScope, testRegID)
	}

	reg := receive(t, d.requests, "the registration")
	var body map[string]any
	if err := json.Unmarshal(reg.body, &body); err != nil {
		t.Fatalf("registration body %q: %v", reg.body, err)
	}
	if diff := cmp.Diff(map[string]any{"registrationId": testRegID, "payload": map[string]any{"site": "north", "modelId": "dtmi:com:example:Thermostat;1"}}, body); diff != "" {
		t.Errorf("registration body (-want +got):\n%s", diff)
	}
	poll := receive(t, d.requests, "the poll")
	if poll.Kind != mqttwire.DPSPoll || poll.OperationID != "4.op1" || poll.conn != reg.conn {
		t.Errorf("second request = %+v, want a poll of 4.op1 on the same connection", poll)
	}
	if waited := poll.at.Sub(reg.at); waited < time.Second {
		t.Errorf("polled %v after the 202, before its retry-after of 1 s", waited)
	}
}

// TestRegisterRetries: throttling and server errors are retried, the
// former after its retry-after on the same connection, the latter on a
// new connection after the backoff; a lost connection resumes the
// operation it had started; an operation DPS no longer knows starts over.
func TestRegisterRetries(t *testing.T) {
	tests := []struct {
		name    string
		answers []reply // to the requests in turn, one each
		want    []string
		wait    time.Duration // at least this long between the first two requests
	}{
		{
			name:    "429 with retry-after",
			answers: []reply{{status: 429, retryAfter: 1, body: `{"errorCode":429001,"message":"throttled"}`}, {status: 202, body: assigning}, {status: 200, body: assigned}},
			want:    []string{"register@1", "register@1", "poll@1"},
			wait:    time.Second,
		},
		{
			name:    "500 then a new connection",
			answers: []reply{{status: 500, body: `{"errorCode":500000}`}, {status: 202, body: assigning}, {status: 200, body: assigned}},
			want:    []string{"register@1", "register@2", "poll@2"},
		},
		{
			name:    "connection lost while polling",
			answers: []reply{{status: 202, body: assigning}, {}, {status: 200, body: assigned}},
			want:    []string{"register@1", "poll@1", "poll@2"},
		},
		{
			name:    "operation unknown",
			answers: []reply{{status: 202, body: assigning}, {status: 404, body: `{"errorCode":404201}`}, {status: 202, body: assigning}, {status: 200, body: assigned}},
			want:    []string{"register@1", "poll@1", "register@1", "poll@1"},
		},
		{
			name:    "malformed answer",
			answers: []reply{{status: 202, body: `not json`}, {status: 202, body: assigning}, {status: 200, body: assigned}},
			want:    []string{"register@1", "register@2", "poll@2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var n atomic.Int32
			d := startDPS(t, dpsScript{answer: func(dpsRequest) []reply {
				i := int(n.Add(1)) - 1
				if i >= len(tt.answers) {
					return nil
				}
				return []reply{tt.answers[i]}
			}})
			got, err := register(t, symmetricClient(t, d, nil))
			if err != nil {
				t.Fatalf("Register: %v", err)
			}
			if diff := cmp.Diff(wantResult, got); diff != "" {
				t.Errorf("Result (-want +got):\n%s", diff)
			}
			var seen []string
			var times []time.Time
			for range tt.want {
				r := receive(t, d.requests, "a request")
				kind := "register"
				if r.Kind == mqttwire.DPSPoll {
					kind = "poll"
				}
				seen = append(seen, kind+"@"+string(rune('0'+r.conn)))
				times = append(times, r.at)
			}
			if diff := cmp.Diff(tt.want, seen); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			if waited := times[1].Sub(times[0]); waited < tt.wait {
				t.Errorf("second request %v after the first, before the retry-after of %v", waited, tt.wait)
			}
		})
	}
}

// TestRegisterRefusals: a refusal ends Register at once, on the first
// connection, with an *Error that says what DPS said.
func TestRegisterRefusals(t *testing.T) {
	tests := []struct {
		name    string
		script  dpsScript
		is      error // nil: none of the sentinels
		want    *Error
		connack bool
	}{
		{
			name: "401",
			script: dpsScript{answer: func(dpsRequest) []reply {
				return []reply{{status: 401, body: `{"errorCode":401002,"trackingId":"t-1","message":"Unauthorized"}`}}
			}},
			is:   ErrUnauthorized,
			want: &Error{Status: 401, Code: 401002, TrackingID: "t-1", Message: "Unauthorized"},
		},
		{
			name:    "CONNACK not authorized",
			script:  dpsScript{connack: 5},
			is:      ErrUnauthorized,
			connack: true,
		},
		{
			name: "assignment failed",
			script: dpsScript{answer: func(r dpsRequest) []reply {
				if r.Kind == mqttwire.DPSRegister {
					return []reply{{status: 202, body: assigning}}
				}
				return []reply{{status: 200, body: `{"operationId":"4.op1","status":"failed","registrationState":{"registrationId":"sensor-7","status":"failed","errorCode":400207,"errorMessage":"Custom allocation failed with status code: 500"}}`}}
			}},
			is:   ErrAssignmentFailed,
			want: &Error{Status: 200, RegistrationStatus: "failed", Code: 400207, Message: "Custom allocation failed with status code: 500"},
		},
		{
			name: "registration disabled",
			script: dpsScript{answer: func(dpsRequest) []reply {
				return []reply{{status: 200, body: `{"operationId":"4.op1","status":"disabled","registrationState":{"registrationId":"sensor-7","status":"disabled"}}`}}
			}},
			is:   ErrDisabled,
			want: &Error{Status: 200, RegistrationStatus: "disabled"},
		},
		{
			name:   "400",
			script: dpsScript{answer: func(dpsRequest) []reply { return []reply{{status: 400, body: `{"errorCode":400004,"message":"bad"}`}} }},
			want:   &Error{Status: 400, Code: 400004, Message: "bad"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := startDPS(t, tt.script)
			begin := time.Now()
			_, err := register(t, symmetricClient(t, d, nil))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Register = %v, want an *Error", err)
			}
			for _, s := range []error{ErrUnauthorized, ErrDisabled, ErrAssignmentFailed} {
				if errors.Is(err, s) != (s == tt.is) {
					t.Errorf("errors.Is(%v, %v) = %v", err, s, !(s == tt.is))
				}
			}
			if tt.want != nil {
				if diff := cmp.Diff(tt.want, e); diff != "" {
					t.Errorf("*Error (-want +got):\n%s", diff)
				}
			}
			d.mu.Lock()
			conns := d.count
			d.mu.Unlock()
			if conns != 1 {
				t.Errorf("%d connections for a refusal, want 1", conns)
			}
			if took := time.Since(begin); took > 5*time.Second {
				t.Errorf("a refusal took %v", took)
			}
		})
	}
}

// TestRegisterBoundedByContext: a DPS that never answers holds Register
// only until its context ends.
func TestRegisterBoundedByContext(t *testing.T) {
	d := startDPS(t, dpsScript{answer: func(dpsRequest) []reply { return nil }})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err := symmetricClient(t, d, nil).Register(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Register = %v, want context.DeadlineExceeded", err)
	}
}

// TestRegisterX509: the registration ID is the certificate's common name,
// the TLS handshake carries the certificate, and no password is sent.
func TestRegisterX509(t *testing.T) {
	d := startDPS(t, dpsScript{requireCert: true, answer: assignAfterPoll(0)})
	cert, err := testcert.Client(testRegID)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewX509Client(testScope, cert, d.options())
	if err != nil {
		t.Fatal(err)
	}
	if c.RegistrationID() != testRegID {
		t.Errorf("RegistrationID = %q, want the common name %q", c.RegistrationID(), testRegID)
	}
	if _, err := register(t, c); err != nil {
		t.Fatalf("Register: %v", err)
	}
	info := receive(t, d.connects, "the CONNECT")
	if info.packet.PasswordFlag || len(info.peerCerts) != 1 || info.peerCerts[0].Subject.CommonName != testRegID {
		t.Errorf("CONNECT password flag %v, %d peer certificates; want no password and the device's certificate", info.packet.PasswordFlag, len(info.peerCerts))
	}
}

// TestClientOptionsRefused: arguments a client cannot work with fail the
// constructor with ErrInvalidConfig.
func TestClientOptionsRefused(t *testing.T) {
	tests := []struct {
		name           string
		scope, id, key string
		opts           *Options
	}{
		{"empty scope", "", testRegID, testKeyB64(), nil},
		{"scope with a slash", "0ne/x", testRegID, testKeyB64(), nil},
		{"uppercase registration id", testScope, "Sensor-7", testKeyB64(), nil},
		{"registration id with a slash", testScope, "a/b", testKeyB64(), nil},
		{"key not base64", testScope, testRegID, "not base64!", nil},
		{"payload not JSON", testScope, testRegID, testKeyB64(), &Options{Payload: json.RawMessage(`{`)}},
		{"model id with a payload that is no object", testScope, testRegID, testKeyB64(), &Options{Payload: json.RawMessage(`[1]`), ModelID: "dtmi:a:b;1"}},
		{"bad host", testScope, testRegID, testKeyB64(), &Options{Host: "a b"}},
		{"bad port", testScope, testRegID, testKeyB64(), &Options{Port: 70000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewSymmetricKeyClient(tt.scope, tt.id, tt.key, tt.opts); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("NewSymmetricKeyClient = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

// TestParseResult: a cached result reads back, and one a device client
// could not use is refused.
func TestParseResult(t *testing.T) {
	data, err := json.Marshal(wantResult)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseResult(data)
	if err != nil {
		t.Fatalf("ParseResult of a marshalled Result: %v", err)
	}
	if diff := cmp.Diff(wantResult, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	for _, bad := range []string{``, `{}`, `{"assignedHub":"hub","deviceId":""}`, `{"assignedHub":"a b","deviceId":"d"}`, `[1]`} {
		if _, err := ParseResult([]byte(bad)); err == nil || !strings.Contains(err.Error(), "unusable result") {
			t.Errorf("ParseResult(%q) = %v, want an unusable-result error", bad, err)
		}
	}
}
