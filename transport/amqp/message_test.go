package amqp

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/directmethods/iotdevice/internal/amqpwire"
	"github.com/directmethods/iotdevice/internal/errtest"
	"github.com/directmethods/iotdevice/transport"
	"github.com/google/go-cmp/cmp"
)

var testUUID = goamqp.UUID{0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x47, 0x08, 0x89, 0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f, 0x60}

const testUUIDString = "a1b2c3d4-e5f6-4708-890a-1b2c3d4e5f60"

func methodMessage(id any, name any, data ...[]byte) *goamqp.Message {
	m := &goamqp.Message{Data: data}
	if id != nil {
		m.Properties = &goamqp.MessageProperties{CorrelationID: id}
	}
	if name != nil {
		m.ApplicationProperties = map[string]any{amqpwire.MethodNameProperty: name}
	}
	return m
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name string
		msg  *goamqp.Message
		want *transport.MethodRequest
	}{
		{"uuid", methodMessage(testUUID, "reboot", []byte(`{"a":1}`)),
			&transport.MethodRequest{Name: "reboot", RequestID: testUUIDString, Payload: []byte(`{"a":1}`), Handle: testUUID}},
		{"data sections concatenated", methodMessage(testUUID, "m", []byte(`[1,`), []byte(`2]`)),
			&transport.MethodRequest{Name: "m", RequestID: testUUIDString, Payload: []byte(`[1,2]`), Handle: testUUID}},
		{"empty data section", methodMessage(testUUID, "m", []byte{}),
			&transport.MethodRequest{Name: "m", RequestID: testUUIDString, Handle: testUUID}},
		{"string id", methodMessage("rid-1", "m", []byte("null")),
			&transport.MethodRequest{Name: "m", RequestID: "rid-1", Payload: []byte("null"), Handle: "rid-1"}},
		{"ulong id", methodMessage(uint64(42), "m", []byte("{}")),
			&transport.MethodRequest{Name: "m", RequestID: "42", Payload: []byte("{}"), Handle: uint64(42)}},
		{"binary id", methodMessage([]byte{0xbe, 0xef}, "m", []byte("{}")),
			&transport.MethodRequest{Name: "m", RequestID: "beef", Payload: []byte("{}"), Handle: []byte{0xbe, 0xef}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRequest(tt.msg)
			if err != nil {
				t.Fatalf("parseRequest: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseRequest (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseRequestMalformed(t *testing.T) {
	tests := []struct {
		name string
		msg  *goamqp.Message
	}{
		{"nil message", nil},
		{"no properties", methodMessage(nil, "m", []byte("{}"))},
		{"no correlation id", &goamqp.Message{Properties: &goamqp.MessageProperties{}, ApplicationProperties: map[string]any{amqpwire.MethodNameProperty: "m"}, Data: [][]byte{{}}}},
		{"empty string id", methodMessage("", "m", []byte("{}"))},
		{"empty binary id", methodMessage([]byte{}, "m", []byte("{}"))},
		{"id of another type", methodMessage(int32(5), "m", []byte("{}"))},
		{"no method name", methodMessage(testUUID, nil, []byte("{}"))},
		{"empty method name", methodMessage(testUUID, "", []byte("{}"))},
		{"method name not a string", methodMessage(testUUID, int32(1), []byte("{}"))},
		{"no data section", methodMessage(testUUID, "m")},
		{"amqp-value body", &goamqp.Message{Properties: &goamqp.MessageProperties{CorrelationID: testUUID}, ApplicationProperties: map[string]any{amqpwire.MethodNameProperty: "m"}, Value: "{}"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := parseRequest(tt.msg)
			if !errors.Is(err, errMalformedRequest) {
				t.Fatalf("parseRequest = %+v, %v; want errMalformedRequest", req, err)
			}
		})
	}
}

func TestNewResponse(t *testing.T) {
	tests := []struct {
		name    string
		req     *transport.MethodRequest
		status  int
		payload []byte
		want    *goamqp.Message
	}{
		{"uuid handle", &transport.MethodRequest{RequestID: testUUIDString, Handle: testUUID}, 200, []byte(`{"ok":1}`),
			response(testUUID, 200, `{"ok":1}`)},
		{"nil payload is an empty data section", &transport.MethodRequest{RequestID: testUUIDString, Handle: testUUID}, 404, nil,
			response(testUUID, 404, ``)},
		{"string handle", &transport.MethodRequest{RequestID: "rid", Handle: "rid"}, 500, []byte(`{}`),
			response("rid", 500, `{}`)},
		{"ulong handle", &transport.MethodRequest{RequestID: "7", Handle: uint64(7)}, 200, []byte(`1`),
			response(uint64(7), 200, `1`)},
		{"no handle, uuid request id", &transport.MethodRequest{RequestID: testUUIDString}, 200, []byte(`1`),
			response(testUUID, 200, `1`)},
		{"no handle, other request id", &transport.MethodRequest{RequestID: "abc"}, 200, []byte(`1`),
			response("abc", 200, `1`)},
		{"negative status", &transport.MethodRequest{RequestID: "abc", Handle: "abc"}, -1, []byte(`1`),
			response("abc", -1, `1`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newResponse(tt.req, tt.status, tt.payload)
			if err != nil {
				t.Fatalf("newResponse: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(goamqp.Message{})); diff != "" {
				t.Errorf("newResponse (-want +got):\n%s", diff)
			}
		})
	}
}

func response(id any, status int32, payload string) *goamqp.Message {
	return &goamqp.Message{
		Properties:            &goamqp.MessageProperties{CorrelationID: id},
		ApplicationProperties: map[string]any{amqpwire.StatusProperty: status},
		Data:                  [][]byte{[]byte(payload)},
	}
}

func TestNewResponseErrors(t *testing.T) {
	type test struct {
		name   string
		req    *transport.MethodRequest
		status int
	}
	tests := []test{
		{"nil request", nil, 200},
		{"no id at all", &transport.MethodRequest{Name: "m"}, 200},
	}
	if strconv.IntSize == 64 { // only a 64-bit int can exceed an int32
		tooLarge := int64(math.MaxInt32) + 1
		tests = append(tests, test{"status too large", &transport.MethodRequest{RequestID: "a", Handle: "a"}, int(tooLarge)})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if m, err := newResponse(tt.req, tt.status, nil); err == nil {
				t.Errorf("newResponse = %+v, want an error", m)
			}
		})
	}
}

func TestNewPutTokenRequest(t *testing.T) {
	got := newPutTokenRequest("SharedAccessSignature sr=x&sig=y&se=1", "hub/devices/d", "id-1")
	replyTo := "cbs"
	want := &goamqp.Message{
		Properties: &goamqp.MessageProperties{MessageID: "id-1", ReplyTo: &replyTo},
		ApplicationProperties: map[string]any{
			"operation": "put-token",
			"type":      "servicebus.windows.net:sastoken",
			"name":      "hub/devices/d",
		},
		Value: "SharedAccessSignature sr=x&sig=y&se=1",
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(goamqp.Message{})); diff != "" {
		t.Errorf("newPutTokenRequest (-want +got):\n%s", diff)
	}
}

func TestPutTokenStatus(t *testing.T) {
	type result struct {
		ID          any
		Status      int
		Description string
		OK          bool
	}
	tests := []struct {
		name string
		msg  *goamqp.Message
		want result
	}{
		{"int32", &goamqp.Message{Properties: &goamqp.MessageProperties{CorrelationID: "a"},
			ApplicationProperties: map[string]any{"status-code": int32(200), "status-description": "OK"}}, result{"a", 200, "OK", true}},
		{"int64", &goamqp.Message{ApplicationProperties: map[string]any{"status-code": int64(401)}}, result{nil, 401, "", true}},
		{"uint8", &goamqp.Message{ApplicationProperties: map[string]any{"status-code": uint8(202)}}, result{nil, 202, "", true}},
		{"missing", &goamqp.Message{}, result{}},
		{"string", &goamqp.Message{ApplicationProperties: map[string]any{"status-code": "200"}}, result{}},
		{"nil message", nil, result{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, status, desc, ok := putTokenStatus(tt.msg)
			if diff := cmp.Diff(tt.want, result{id, status, desc, ok}); diff != "" {
				t.Errorf("putTokenStatus (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseUUID(t *testing.T) {
	tests := []struct {
		in   string
		want goamqp.UUID
		ok   bool
	}{
		{testUUIDString, testUUID, true},
		{"A1B2C3D4-E5F6-4708-890A-1B2C3D4E5F60", testUUID, true},
		{"a1b2c3d4e5f64708890a1b2c3d4e5f60", goamqp.UUID{}, false},
		{"a1b2c3d4-e5f6-4708-890a-1b2c3d4e5f6g", goamqp.UUID{}, false},
		{"", goamqp.UUID{}, false},
	}
	for _, tt := range tests {
		got, ok := parseUUID(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseUUID(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
	u := newUUID()
	if back, ok := parseUUID(u.String()); !ok || back != u {
		t.Errorf("newUUID %v does not round-trip", u)
	}
	if u[6]>>4 != 4 || u[8]>>6 != 2 {
		t.Errorf("newUUID %v is not a version 4 uuid", u)
	}
}

func TestLinkFailure(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	remote := func(cond goamqp.ErrCond) error { return &goamqp.Error{Condition: cond} }
	tests := []struct {
		name      string
		ctx       context.Context
		err       error
		attach    bool
		sentinels []error // it wraps these, and no other error of outcomes
	}{
		{"unauthorized", context.Background(), remote(goamqp.ErrCondUnauthorizedAccess), false, []error{transport.ErrUnauthorized}},
		{"not found on method link", context.Background(), remote(goamqp.ErrCondNotFound), true, []error{transport.ErrIdentityNotFound}},
		{"not found elsewhere", context.Background(), remote(goamqp.ErrCondNotFound), false, []error{transport.ErrConnLost}},
		{"resource limit", context.Background(), remote(goamqp.ErrCondResourceLimitExceeded), false, []error{transport.ErrThrottled}},
		{"container throttled", context.Background(), remote("com.microsoft:device-container-throttled"), false, []error{transport.ErrThrottled}},
		{"timeout", context.Background(), remote("com.microsoft:timeout"), false, []error{transport.ErrServerBusy}},
		{"server busy", context.Background(), remote("com.microsoft:server-busy"), false, []error{transport.ErrServerBusy}},
		{"link detached", context.Background(), &goamqp.LinkError{}, false, []error{transport.ErrConnLost}},
		{"session ended", context.Background(), &goamqp.SessionError{}, false, []error{transport.ErrConnLost}},
		{"connection closed", context.Background(), &goamqp.ConnError{}, false, []error{transport.ErrConnLost}},
		{"canceled", canceled, &goamqp.ConnError{}, true, []error{context.Canceled}},
		{"deadline", context.Background(), fmt.Errorf("x: %w", context.DeadlineExceeded), false, []error{context.DeadlineExceeded}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got error
			if tt.attach {
				got = attachFailure(tt.ctx, tt.err)
			} else {
				got = linkFailure(tt.ctx, tt.err)
			}
			errtest.WantOnly(t, got, tt.sentinels...)
			if !errors.Is(got, tt.err) {
				t.Errorf("%v lost its cause %v", got, tt.err)
			}
		})
	}
	if linkFailure(context.Background(), nil) != nil {
		t.Error("linkFailure(nil) != nil")
	}
}

func TestPutTokenError(t *testing.T) {
	tests := []struct {
		status   int
		sentinel error
	}{
		{401, transport.ErrUnauthorized},
		{403, transport.ErrUnauthorized},
		// IoT Hub's answer for an identity it does not know: "Device
		// {id} at IotHub {hub} not registered." (azure-iot-sdk-c#1413).
		{404, transport.ErrIdentityNotFound},
		{429, transport.ErrThrottled},
		{503, transport.ErrServerBusy},
	}
	for _, tt := range tests {
		errtest.WantOnly(t, putTokenError(tt.status, "desc"), tt.sentinel)
	}
	err := putTokenError(400, "bad request")
	for _, s := range []error{transport.ErrUnauthorized, transport.ErrThrottled, transport.ErrServerBusy} {
		if errors.Is(err, s) {
			t.Errorf("putTokenError(400) wraps %v", s)
		}
	}
}

func TestOptionsDefaults(t *testing.T) {
	otherNetwork := &transport.Network{Name: "other", DefaultPort: 1, Dial: tlsNetwork.Dial}
	// Networks hold functions, which cmp never finds equal: compare them
	// by identity.
	sameNetwork := cmp.Comparer(func(a, b *transport.Network) bool { return a == b })
	tests := []struct {
		name string
		in   *Options
		want Options
	}{
		{"nil", nil, Options{Network: tlsNetwork, QueueSize: DefaultQueueSize, PutTokenTimeout: DefaultPutTokenTimeout, maxUnsettledAnswers: defaultMaxUnsettledAnswers}},
		{"negative", &Options{QueueSize: -1, PutTokenTimeout: -1, maxUnsettledAnswers: -1}, Options{Network: tlsNetwork, QueueSize: DefaultQueueSize, PutTokenTimeout: DefaultPutTokenTimeout, maxUnsettledAnswers: defaultMaxUnsettledAnswers}},
		{"set", &Options{Network: otherNetwork, QueueSize: 3, PutTokenTimeout: time.Second, maxUnsettledAnswers: 2}, Options{Network: otherNetwork, QueueSize: 3, PutTokenTimeout: time.Second, maxUnsettledAnswers: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.in.withDefaults(), sameNetwork, cmp.AllowUnexported(Options{})); diff != "" {
				t.Errorf("withDefaults (-want +got):\n%s", diff)
			}
		})
	}
	for keepAlive, want := range map[time.Duration]time.Duration{0: time.Minute, 30 * time.Second: time.Minute, 4 * time.Minute: 8 * time.Minute} {
		if got := idleTimeout(keepAlive); got != want {
			t.Errorf("idleTimeout(%v) = %v, want %v", keepAlive, got, want)
		}
	}
}
