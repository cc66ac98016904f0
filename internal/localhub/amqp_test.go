package localhub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/google/go-cmp/cmp"

	"github.com/directmethods/iotdevice/internal/amqp"
	"github.com/directmethods/iotdevice/internal/amqpwire"
	"github.com/directmethods/iotdevice/sas"
)

// wantServiceError checks that err is a *ServiceError with code.
func wantServiceError(t testing.TB, err error, code int) {
	t.Helper()
	var se *ServiceError
	if !errors.As(err, &se) || se.ErrorCode != code {
		t.Fatalf("invoke error = %v, want error code %d", err, code)
	}
}

func TestAMQPInvoke(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev-tls", "dev-ws", "dev-prefix", "dev-nochannel", "dev-m/mod-tls", "dev-m/mod-ws", "dev-m/mod-prefix"}})
	tests := []struct {
		identity  string
		webSocket bool
		path      string // "" uses the relative lower-case path
		noChannel bool   // no channel-correlation-id on the links
	}{
		{identity: "dev-tls"},
		{identity: "dev-nochannel", noChannel: true},
		{identity: "dev-ws", webSocket: true},
		{identity: "dev-prefix", path: "amqps://localhost/devices/dev-prefix/methods/deviceBound"},
		{identity: "dev-m/mod-tls"},
		{identity: "dev-m/mod-ws", webSocket: true},
		{identity: "dev-m/mod-prefix", webSocket: true, path: "amqps://localhost:5671/devices/dev-m/modules/mod-prefix/methods/deviceBound"},
	}
	for _, tt := range tests {
		t.Run(tt.identity, func(t *testing.T) {
			c := mustDialAMQP(t, h, tt.webSocket)
			c.authenticate(tt.identity, time.Now().Add(time.Hour))
			path := tt.path
			if path == "" {
				path = methodPath(tt.identity)
			}
			channelID := randomChannelID()
			if tt.noChannel {
				channelID = ""
			}
			m, err := c.attachMethods(tt.identity, path, channelID)
			if err != nil {
				t.Fatalf("attach: %v", err)
			}
			m.serve(func(name string, payload []byte) (int, []byte, bool) {
				if len(payload) == 0 {
					return 204, nil, true // no body: a null payload
				}
				return 201, []byte(`{"method":"` + name + `","got":` + string(payload) + `}`), true
			})
			waitSubscribed(t, h, tt.identity)

			res, err := invoke(t, h, tt.identity, MethodCall{MethodName: "getFanState", Payload: json.RawMessage(`{"speed":3}`)})
			if err != nil {
				t.Fatalf("invoke: %v", err)
			}
			want := &MethodResult{Status: 201, Payload: json.RawMessage(`{"method":"getFanState","got":{"speed":3}}`)}
			if diff := cmp.Diff(want, res); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			req := m.nextRequest(t)
			if _, ok := req.correlationID.(goamqp.UUID); !ok {
				t.Errorf("request correlation-id is %T, want a uuid", req.correlationID)
			}
			if diff := cmp.Diff(amqpRequest{name: "getFanState", data: [][]byte{[]byte(`{"speed":3}`)}}, req,
				cmp.AllowUnexported(amqpRequest{}), cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".correlationID" }, cmp.Ignore())); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}

			res, err = invoke(t, h, tt.identity, MethodCall{MethodName: "reboot"})
			if err != nil {
				t.Fatalf("invoke without payload: %v", err)
			}
			if diff := cmp.Diff(&MethodResult{Status: 204, Payload: json.RawMessage("null")}, res); diff != "" {
				t.Errorf("result without payload (-want +got):\n%s", diff)
			}
			req = m.nextRequest(t)
			if diff := cmp.Diff([][]byte{{}}, req.data); diff != "" {
				t.Errorf("request without payload: data sections (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAMQPMethodLinkRefused(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev-1", "dev-2"}})
	c := mustDialAMQP(t, h, false)
	_, err := c.attachMethods("dev-1", methodPath("dev-1"), randomChannelID())
	if got := remoteCondition(err); got != string(amqp.ErrCondUnauthorizedAccess) {
		t.Errorf("attach before put-token: err %v (condition %q), want %s", err, got, amqp.ErrCondUnauthorizedAccess)
	}
	_, err = c.attachMethods("ghost", methodPath("ghost"), randomChannelID())
	if got := remoteCondition(err); got != string(amqp.ErrCondNotFound) {
		t.Errorf("attach for an unknown identity: err %v (condition %q), want %s", err, got, amqp.ErrCondNotFound)
	}
	// A token for dev-1 does not open dev-2's links, but opens dev-1's on
	// the same connection.
	c.authenticate("dev-1", time.Now().Add(time.Hour))
	_, err = c.attachMethods("dev-2", methodPath("dev-2"), randomChannelID())
	if got := remoteCondition(err); got != string(amqp.ErrCondUnauthorizedAccess) {
		t.Errorf("attach for another identity: err %v (condition %q), want %s", err, got, amqp.ErrCondUnauthorizedAccess)
	}
	m := c.mustAttach("dev-1")
	m.serve(echo)
	waitSubscribed(t, h, "dev-1")
	if _, err := invoke(t, h, "dev-1", MethodCall{MethodName: "ping"}); err != nil {
		t.Errorf("invoke after refusals: %v", err)
	}
}

func TestAMQPPutToken(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev-1", "dev-2", "dev-1/mod-1"}})
	cs1, _ := h.ConnectionString("dev-1")
	cs2, _ := h.ConnectionString("dev-2")
	csMod, _ := h.ConnectionString("dev-1/mod-1")
	now := time.Now()
	valid := deviceToken(t, cs1, now.Add(time.Hour))
	audience := "localhost/devices/dev-1"
	otherKey := make([]byte, 32)
	forged := sas.Sign(otherKey, "localhost/devices/dev-1", "", now.Add(time.Hour))
	policyKey, _ := h.reg.policyKey(ServicePolicy)
	policyToken := sas.Sign(policyKey, "localhost/devices/dev-1", ServicePolicy, now.Add(time.Hour))

	withProps := func(m *goamqp.Message, set map[string]any) *goamqp.Message {
		for k, v := range set {
			if v == nil {
				delete(m.ApplicationProperties, k)
			} else {
				m.ApplicationProperties[k] = v
			}
		}
		return m
	}
	tests := []struct {
		name string
		msg  *goamqp.Message
		want cbsAnswer // Description is checked to be non-empty only
	}{
		{"ulong message id", putTokenMessage(uint64(7), audience, valid), cbsAnswer{CorrelationID: uint64(7), Status: int32(200)}},
		{"string message id", putTokenMessage("5f1c2d4e-0000-4000-8000-000000000001", audience, valid), cbsAnswer{CorrelationID: "5f1c2d4e-0000-4000-8000-000000000001", Status: int32(200)}},
		{"uuid message id", putTokenMessage(goamqp.UUID{1, 2, 3}, audience, valid), cbsAnswer{CorrelationID: goamqp.UUID{1, 2, 3}, Status: int32(200)}},
		{"binary message id", putTokenMessage([]byte{9, 8}, audience, valid), cbsAnswer{CorrelationID: []byte{9, 8}, Status: int32(200)}},
		{"azure-devices type in capitals", withProps(putTokenMessage(uint64(1), audience, valid), map[string]any{"type": "AZURE-DEVICES.NET:SASTOKEN"}), cbsAnswer{CorrelationID: uint64(1), Status: int32(200)}},
		{"encoded audience with scheme", putTokenMessage(uint64(2), "amqps://localhost%2Fdevices%2Fdev-1", valid), cbsAnswer{CorrelationID: uint64(2), Status: int32(200)}},
		{"host-only audience uses sr", putTokenMessage(uint64(3), "localhost", valid), cbsAnswer{CorrelationID: uint64(3), Status: int32(200)}},
		{"module token", putTokenMessage(uint64(4), "localhost/devices/dev-1/modules/mod-1", deviceToken(t, csMod, now.Add(time.Hour))), cbsAnswer{CorrelationID: uint64(4), Status: int32(200)}},
		{"device token for its module", putTokenMessage(uint64(16), "localhost/devices/dev-1/modules/mod-1", valid), cbsAnswer{CorrelationID: uint64(16), Status: int32(401)}},
		{"policy token", putTokenMessage(uint64(5), audience, policyToken), cbsAnswer{CorrelationID: uint64(5), Status: int32(200)}},
		{"forged", putTokenMessage(uint64(10), audience, forged), cbsAnswer{CorrelationID: uint64(10), Status: int32(401)}},
		{"expired", putTokenMessage(uint64(11), audience, deviceToken(t, cs1, now.Add(-time.Hour))), cbsAnswer{CorrelationID: uint64(11), Status: int32(401)}},
		{"other identity's token", putTokenMessage(uint64(12), audience, deviceToken(t, cs2, now.Add(time.Hour))), cbsAnswer{CorrelationID: uint64(12), Status: int32(401)}},
		{"unknown identity", putTokenMessage(uint64(13), "localhost/devices/ghost", valid), cbsAnswer{CorrelationID: uint64(13), Status: int32(404)}},
		{"unknown module", putTokenMessage(uint64(17), "localhost/devices/dev-1/modules/ghost", valid), cbsAnswer{CorrelationID: uint64(17), Status: int32(404)}},
		{"host-only audience, unknown sr", putTokenMessage(uint64(18), "localhost", sas.Sign(otherKey, "localhost/devices/ghost", "", now.Add(time.Hour))), cbsAnswer{CorrelationID: uint64(18), Status: int32(404)}},
		{"another hub", putTokenMessage(uint64(14), "otherhub/devices/dev-1", valid), cbsAnswer{CorrelationID: uint64(14), Status: int32(401)}},
		{"garbage token", putTokenMessage(uint64(15), audience, "SharedAccessSignature nonsense"), cbsAnswer{CorrelationID: uint64(15), Status: int32(401)}},
		{"no operation", withProps(putTokenMessage(uint64(20), audience, valid), map[string]any{"operation": nil}), cbsAnswer{CorrelationID: uint64(20), Status: int32(400)}},
		{"wrong type", withProps(putTokenMessage(uint64(21), audience, valid), map[string]any{"type": "jwt"}), cbsAnswer{CorrelationID: uint64(21), Status: int32(400)}},
		{"no name", withProps(putTokenMessage(uint64(22), audience, valid), map[string]any{"name": nil}), cbsAnswer{CorrelationID: uint64(22), Status: int32(400)}},
		{"binary body", &goamqp.Message{Properties: &goamqp.MessageProperties{MessageID: uint64(23)},
			ApplicationProperties: map[string]any{"operation": "put-token", "type": "servicebus.windows.net:sastoken", "name": audience},
			Data:                  [][]byte{[]byte(valid)}}, cbsAnswer{CorrelationID: uint64(23), Status: int32(400)}},
		{"audience without device", putTokenMessage(uint64(24), "localhost/twins", valid), cbsAnswer{CorrelationID: uint64(24), Status: int32(400)}},
		{"no message id", withProps(&goamqp.Message{ApplicationProperties: map[string]any{"operation": "put-token", "type": "servicebus.windows.net:sastoken", "name": audience}, Value: valid}, nil), cbsAnswer{Status: int32(400)}},
	}
	c := mustDialAMQP(t, h, false)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.putTokenRaw(tt.msg)
			if got.Description == "" {
				t.Errorf("status-description is empty")
			}
			got.Description = ""
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
			if strings.Contains(got.Description, "sig=") {
				t.Errorf("status-description echoes the token")
			}
		})
	}
}

// TestAMQPPutTokenUnknownIdentity: IoT Hub answers the put-token of an
// identity it does not know 404 "Device {id} at IotHub {hub} not
// registered." (azure-iot-sdk-c#1413; Azure/iotedge#5639 for a module),
// whatever the token, since there is no key to check it against.
func TestAMQPPutTokenUnknownIdentity(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev-1"}})
	cs, _ := h.ConnectionString("dev-1")
	token := deviceToken(t, cs, time.Now().Add(time.Hour))
	tests := []struct {
		audience string
		want     cbsAnswer
	}{
		{"localhost/devices/ghost", cbsAnswer{CorrelationID: uint64(1), Status: int32(404), Description: "Device ghost at IotHub localhost not registered."}},
		{"localhost/devices/dev-1/modules/ghost", cbsAnswer{CorrelationID: uint64(2), Status: int32(404), Description: "Device dev-1/ghost at IotHub localhost not registered."}},
	}
	c := mustDialAMQP(t, h, false)
	for i, tt := range tests {
		got := c.putTokenRaw(putTokenMessage(uint64(i+1), tt.audience, token))
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("put-token for %s (-want +got):\n%s", tt.audience, diff)
		}
	}
}

func TestAMQPTokenRenewalKeepsLinks(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev-1"}})
	c := mustDialAMQP(t, h, false)
	first := time.Now().Add(3 * time.Second)
	c.authenticate("dev-1", first)
	m := c.mustAttach("dev-1")
	m.serve(echo)
	waitSubscribed(t, h, "dev-1")
	c.authenticate("dev-1", time.Now().Add(time.Hour))
	// Invoke continuously until well past the first token's expiry: every
	// call must succeed on the same links.
	calls := 0
	for deadline := first.Add(time.Second); time.Now().Before(deadline) || calls == 0; calls++ {
		res, err := invoke(t, h, "dev-1", MethodCall{MethodName: "ping", Payload: json.RawMessage(fmt.Sprint(calls))})
		if err != nil {
			t.Fatalf("call %d: %v", calls, err)
		}
		if string(res.Payload) != fmt.Sprint(calls) {
			t.Fatalf("call %d answered %s", calls, res.Payload)
		}
	}
	select {
	case <-c.conn.Done():
		t.Fatalf("connection closed after renewal: %v", c.conn.Err())
	default:
	}
}

func TestAMQPTokenExpiryClosesConnection(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev-1"}})
	c := mustDialAMQP(t, h, true)
	c.authenticate("dev-1", time.Now().Add(3*time.Second))
	m := c.mustAttach("dev-1")
	m.serve(echo)
	waitSubscribed(t, h, "dev-1")
	if got := c.waitConnClosed(t); got != string(amqp.ErrCondUnauthorizedAccess) {
		t.Errorf("close condition = %q, want %s", got, amqp.ErrCondUnauthorizedAccess)
	}
	_, err := invoke(t, h, "dev-1", MethodCall{MethodName: "ping"})
	wantServiceError(t, err, 404103)
}

func TestAMQPLinkDetachAndReattach(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev-1"}})
	c, m := connectAMQPDevice(t, h, "dev-1", false, nil)
	if _, err := invoke(t, h, "dev-1", MethodCall{MethodName: "ping"}); err != nil {
		t.Fatalf("invoke: %v", err)
	}
	m.stopServing()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if err := m.requests.Close(ctx); err != nil {
		t.Fatalf("close receiver: %v", err)
	}
	// Once the hub has seen the link go, the device is offline for calls.
	waitUnsubscribed(t, h, "dev-1")
	_, err := invoke(t, h, "dev-1", MethodCall{MethodName: "ping"})
	wantServiceError(t, err, 404103)
	// The hub has detached the paired sender: sending on it fails.
	for {
		err := m.respond(ctx, goamqp.UUID{}, 200, nil)
		if err != nil {
			if cond := remoteCondition(err); cond != string(amqp.ErrCondDetachForced) {
				t.Errorf("sender ended with %v (condition %q), want %s", err, cond, amqp.ErrCondDetachForced)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the hub did not detach the paired link")
		}
	}

	m2 := c.mustAttach("dev-1")
	m2.serve(echo)
	waitSubscribed(t, h, "dev-1")
	if _, err := invoke(t, h, "dev-1", MethodCall{MethodName: "ping"}); err != nil {
		t.Fatalf("invoke after re-attach: %v", err)
	}
}

// TestAMQPInFlightCall checks a call in flight when the device's links go
// away: the request is not sent again (a handler runs at most once), an
// answer on later links is not matched to it (request numbers start again
// on every pair of links, so the old id may name another call there), and
// the call ends with 504101 at its response timeout.
func TestAMQPInFlightCall(t *testing.T) {
	tests := []struct {
		name           string
		connectTimeout int
		reattach       bool
	}{
		{"no connect timeout", 0, false},
		{"device re-attaches", 60, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := startHub(t, Options{Devices: []string{"dev-1"}})
			c := mustDialAMQP(t, h, false)
			c.authenticate("dev-1", time.Now().Add(time.Hour))
			m := c.mustAttach("dev-1")
			m.serve(func(string, []byte) (int, []byte, bool) { return 0, nil, false }) // never answers
			waitSubscribed(t, h, "dev-1")

			type outcome struct {
				res *MethodResult
				err error
			}
			done := make(chan outcome, 1)
			var wg sync.WaitGroup
			defer wg.Wait()
			wg.Go(func() { // owned by this test: ends with the invocation; joined above
				res, err := invoke(t, h, "dev-1", MethodCall{MethodName: "slow", ConnectTimeoutInSeconds: tt.connectTimeout, ResponseTimeoutInSeconds: minResponseTimeout})
				done <- outcome{res, err}
			})
			req := m.nextRequest(t) // the call is in flight
			m.stopServing()
			ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
			defer cancel()
			if err := m.responses.Close(ctx); err != nil {
				t.Fatalf("close sender: %v", err)
			}
			if tt.reattach {
				// Wait until the receiver the hub detached is gone, so its
				// handle is free again (go-amqp reuses handles early).
				_ = m.requests.Close(ctx)
				m2 := c.mustAttach("dev-1")
				m2.serve(echo)
				waitSubscribed(t, h, "dev-1")
				if err := m2.respond(ctx, req.correlationID, 200, []byte(`"late"`)); err != nil {
					t.Fatalf("answer on the new links: %v", err)
				}
				// The new links number their requests from 1 again: the
				// stale answer above named no call of theirs, and a new call
				// is answered normally.
				res, err := invoke(t, h, "dev-1", MethodCall{MethodName: "next", Payload: json.RawMessage(`"fresh"`)})
				if err != nil || string(res.Payload) != `"fresh"` {
					t.Fatalf("call on the new links: %+v, %v", res, err)
				}
				if got := m2.nextRequest(t).correlationID; got != req.correlationID {
					t.Errorf("first request on the new links has correlation id %v, want %v (numbering per link pair)", got, req.correlationID)
				}
			}
			var o outcome
			select {
			case o = <-done:
			case <-time.After(minResponseTimeout*time.Second + waitTimeout):
				t.Fatal("the call did not finish")
			}
			wantServiceError(t, o.err, 504101)
		})
	}
}

func TestAMQPIdentityIsolation(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev-a", "dev-b"}})
	// Both identities share one connection (multiplexing).
	c := mustDialAMQP(t, h, false)
	c.authenticate("dev-a", time.Now().Add(time.Hour))
	c.authenticate("dev-b", time.Now().Add(time.Hour))
	a := c.mustAttach("dev-a")
	b := c.mustAttach("dev-b")
	a.serve(func(string, []byte) (int, []byte, bool) { return 0, nil, false }) // the test answers
	b.serve(echo)
	waitSubscribed(t, h, "dev-a")
	waitSubscribed(t, h, "dev-b")
	// The hub numbers requests per link pair: a first call to dev-b makes
	// its next request's number differ from dev-a's first, so that the
	// round trip below cannot be taken for the answer dev-b steals.
	if res, err := invoke(t, h, "dev-b", MethodCall{MethodName: "ping"}); err != nil || res.Status != 200 {
		t.Fatalf("dev-b first ping: %v, %v", res, err)
	}

	type outcome struct {
		res *MethodResult
		err error
	}
	done := make(chan outcome, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { // owned by this test: ends with the invocation; joined above
		res, err := invoke(t, h, "dev-a", MethodCall{MethodName: "who"})
		done <- outcome{res, err}
	})
	req := a.nextRequest(t)
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	// dev-b answers dev-a's request: settled sends, so wait for the hub by
	// a round trip through dev-b afterwards.
	if err := b.respond(ctx, req.correlationID, 999, []byte(`"stolen"`)); err != nil {
		t.Fatalf("dev-b respond: %v", err)
	}
	if res, err := invoke(t, h, "dev-b", MethodCall{MethodName: "ping"}); err != nil || res.Status != 200 {
		t.Fatalf("dev-b ping: %v, %v", res, err)
	}
	select {
	case o := <-done:
		t.Fatalf("dev-a's call finished with dev-b's answer: %v, %v", o.res, o.err)
	default:
	}
	if err := a.respond(ctx, req.correlationID, 200, []byte(`"mine"`)); err != nil {
		t.Fatalf("dev-a respond: %v", err)
	}
	o := <-done
	if o.err != nil {
		t.Fatal(o.err)
	}
	if diff := cmp.Diff(&MethodResult{Status: 200, Payload: json.RawMessage(`"mine"`)}, o.res); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
}

func TestAMQPResponseWithoutStatusRejected(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev-1"}})
	c := mustDialAMQP(t, h, false)
	c.authenticate("dev-1", time.Now().Add(time.Hour))
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	// An unsettled sender, so the hub's outcome comes back.
	s, err := c.session.NewSender(ctx, methodPath("dev-1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Send(ctx, &goamqp.Message{Properties: &goamqp.MessageProperties{CorrelationID: goamqp.UUID{1}}, Data: [][]byte{[]byte(`{}`)}}, nil)
	if got := remoteCondition(err); got != string(amqp.ErrCondDecodeError) {
		t.Errorf("send without status: %v (condition %q), want %s", err, got, amqp.ErrCondDecodeError)
	}
	// An unknown correlation id is accepted and ignored.
	err = s.Send(ctx, &goamqp.Message{Properties: &goamqp.MessageProperties{CorrelationID: "not-a-uuid"},
		ApplicationProperties: map[string]any{amqpwire.StatusProperty: int64(200)}}, nil)
	if err != nil {
		t.Errorf("send with an unknown correlation id: %v", err)
	}
}

func TestAMQPX509Device(t *testing.T) {
	h := startHub(t, Options{})
	cert, err := h.AddX509Device("x509-dev")
	if err != nil {
		t.Fatal(err)
	}
	c, err := dialAMQP(t, h, amqpDialOptions{cert: &cert}) // no SASL, no CBS
	if err != nil {
		t.Fatal(err)
	}
	m := c.mustAttach("x509-dev")
	m.serve(echo)
	waitSubscribed(t, h, "x509-dev")
	if _, err := invoke(t, h, "x509-dev", MethodCall{MethodName: "ping"}); err != nil {
		t.Errorf("invoke: %v", err)
	}

	// Without the certificate the same links are refused.
	other, err := dialAMQP(t, h, amqpDialOptions{sasl: goamqp.SASLTypeAnonymous()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = other.attachMethods("x509-dev", methodPath("x509-dev"), randomChannelID())
	if got := remoteCondition(err); got != string(amqp.ErrCondUnauthorizedAccess) {
		t.Errorf("attach without certificate: %v (condition %q)", err, got)
	}
}

func TestAMQPSASLPlain(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev-1", "dev-1/mod-1", "dev-2"}})
	tests := []struct {
		identity string
		username string
	}{
		{"dev-1", "dev-1@sas.localhost"},
		{"dev-1/mod-1", "dev-1/modules/mod-1@sas.localhost"},
	}
	for _, tt := range tests {
		t.Run(tt.identity, func(t *testing.T) {
			cs, _ := h.ConnectionString(tt.identity)
			c, err := dialAMQP(t, h, amqpDialOptions{sasl: goamqp.SASLTypePlain(tt.username, deviceToken(t, cs, time.Now().Add(time.Hour)))})
			if err != nil {
				t.Fatal(err)
			}
			m := c.mustAttach(tt.identity)
			m.serve(echo)
			waitSubscribed(t, h, tt.identity)
			if _, err := invoke(t, h, tt.identity, MethodCall{MethodName: "ping"}); err != nil {
				t.Errorf("invoke: %v", err)
			}
		})
	}
	cs2, _ := h.ConnectionString("dev-2")
	bad := []struct{ name, username, password string }{
		{"other identity's token", "dev-1@sas.localhost", deviceToken(t, cs2, time.Now().Add(time.Hour))},
		{"expired", "dev-2@sas.localhost", deviceToken(t, cs2, time.Now().Add(-time.Hour))},
		{"another hub", "dev-2@sas.otherhub", deviceToken(t, cs2, time.Now().Add(time.Hour))},
		{"unknown identity", "ghost@sas.localhost", deviceToken(t, cs2, time.Now().Add(time.Hour))},
		{"malformed username", "dev-2", deviceToken(t, cs2, time.Now().Add(time.Hour))},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := dialAMQP(t, h, amqpDialOptions{sasl: goamqp.SASLTypePlain(tt.username, tt.password)}); err == nil {
				t.Errorf("dial with a bad PLAIN succeeded")
			}
		})
	}
}

func TestAMQPEviction(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev-1"}})
	first, _ := connectAMQPDevice(t, h, "dev-1", false, nil)
	second, _ := connectAMQPDevice(t, h, "dev-1", true, func(string, []byte) (int, []byte, bool) {
		return 200, []byte(`"second"`), true
	})
	if got := first.waitConnClosed(t); got != string(amqp.ErrCondConnectionForced) {
		t.Errorf("first connection closed with %q, want %s", got, amqp.ErrCondConnectionForced)
	}
	res, err := invoke(t, h, "dev-1", MethodCall{MethodName: "ping"})
	if err != nil || string(res.Payload) != `"second"` {
		t.Errorf("invoke after eviction: %v, %v", res, err)
	}
	select {
	case <-second.conn.Done():
		t.Errorf("second connection closed: %v", second.conn.Err())
	default:
	}
}

// TestAMQPEvictionAcrossProtocols checks that MQTT and AMQP sessions of
// one identity evict each other.
func TestAMQPEvictionAcrossProtocols(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev-1"}})
	mqttDevice := connectDevice(t, h, "dev-1", deviceOptions{})
	amqpClient, _ := connectAMQPDevice(t, h, "dev-1", false, nil)
	mqttDevice.waitLost(t)
	connectDevice(t, h, "dev-1", deviceOptions{})
	amqpClient.waitConnClosed(t)
	if _, err := invoke(t, h, "dev-1", MethodCall{MethodName: "ping"}); err != nil {
		t.Errorf("invoke over MQTT: %v", err)
	}
}

// TestAMQPNoAnswer checks 504101 for a device that takes the request over
// AMQP and never answers (the shortest response timeout is 5 s).
func TestAMQPNoAnswer(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev-1"}})
	connectAMQPDevice(t, h, "dev-1", true, func(string, []byte) (int, []byte, bool) { return 0, nil, false })
	_, err := invoke(t, h, "dev-1", MethodCall{MethodName: "ignored", ResponseTimeoutInSeconds: 5})
	wantServiceError(t, err, 504101)
}

func TestAMQPConcurrentInvocations(t *testing.T) {
	const devices, calls = 10, 200
	var names []string
	for i := range devices {
		names = append(names, fmt.Sprintf("dev-%d", i))
	}
	h := startHub(t, Options{Devices: names})
	for i, name := range names {
		connectAMQPDevice(t, h, name, i%2 == 1, nil)
	}
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for i := range calls {
		wg.Go(func() { // owned by this test; joined below
			name := names[i%devices]
			payload := fmt.Sprintf(`{"call":%d}`, i)
			res, err := invoke(t, h, name, MethodCall{MethodName: "echo", Payload: json.RawMessage(payload)})
			switch {
			case err != nil:
				errs <- fmt.Errorf("call %d to %s: %w", i, name, err)
			case string(res.Payload) != payload:
				errs <- fmt.Errorf("call %d to %s answered %s", i, name, res.Payload)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestAMQPMalformedFrameClosesOnlyThatConnection(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev-1"}})
	connectAMQPDevice(t, h, "dev-1", false, nil)

	raw := rawTLS(t, h)
	header := amqp.ProtocolHeader(amqp.ProtocolAMQP)
	if _, err := raw.Write(header[:]); err != nil {
		t.Fatal(err)
	}
	var echoHeader [8]byte
	if _, err := io.ReadFull(raw, echoHeader[:]); err != nil || echoHeader != header {
		t.Fatalf("protocol header answer %v, %v", echoHeader, err)
	}
	open, err := amqp.AppendFrame(nil, amqp.Frame{Type: amqp.FrameTypeAMQP, Body: &amqp.Open{ContainerID: "raw"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Write(open); err != nil {
		t.Fatal(err)
	}
	// A frame whose size field is smaller than its header.
	if _, err := raw.Write([]byte{0, 0, 0, 4, 2, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	fr := amqp.NewFrameReader(raw, 1<<20)
	var closeErr *amqp.Error
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			break
		}
		if c, ok := f.Body.(*amqp.Close); ok {
			closeErr = c.Error
		}
	}
	if closeErr == nil || closeErr.Condition != amqp.ErrCondFramingError {
		t.Errorf("close error = %v, want %s", closeErr, amqp.ErrCondFramingError)
	}
	if _, err := invoke(t, h, "dev-1", MethodCall{MethodName: "ping"}); err != nil {
		t.Errorf("the other connection stopped working: %v", err)
	}
}

func TestAMQPHubCloseEndsConnections(t *testing.T) {
	h, err := Start(t.Context(), Options{Devices: []string{"dev-1", "dev-2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c1, _ := connectAMQPDevice(t, h, "dev-1", false, nil)
	c2, _ := connectAMQPDevice(t, h, "dev-2", true, nil)
	idle := mustDialAMQP(t, h, false) // no links at all
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*amqpClient{c1, c2, idle} {
		c.waitConnClosed(t)
	}
}

func TestAMQPDisconnect(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev-1"}})
	c, _ := connectAMQPDevice(t, h, "dev-1", false, nil)
	if n := h.Disconnect("dev-1"); n != 1 {
		t.Errorf("Disconnect = %d, want 1", n)
	}
	c.waitConnClosed(t)
}

// TestAMQPWebSocketSubprotocolCase checks that AMQPWSB10 is matched
// case-insensitively and echoed as the client spelled it.
func TestAMQPWebSocketSubprotocolCase(t *testing.T) {
	h := startHub(t, Options{})
	for _, proto := range []string{"AMQPWSB10", "amqpwsb10"} {
		t.Run(proto, func(t *testing.T) {
			nc := dialWebSocket(t, h, proto, proto)
			ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
			defer cancel()
			conn, err := goamqp.NewConn(ctx, nc, &goamqp.ConnOptions{HostName: h.HostName(), SASLType: goamqp.SASLTypeAnonymous()})
			if err != nil {
				t.Fatalf("amqp over the websocket: %v", err)
			}
			conn.Close()
		})
	}
}

// TestAMQPSASLMechanisms checks the mechanisms offered and that MSSBCBS,
// as the C SDK sends it (no initial response), is accepted; go-amqp
// cannot speak MSSBCBS, so the exchange is written by hand.
func TestAMQPSASLMechanisms(t *testing.T) {
	h := startHub(t, Options{})
	raw := rawTLS(t, h)
	header := amqp.ProtocolHeader(amqp.ProtocolSASL)
	if _, err := raw.Write(header[:]); err != nil {
		t.Fatal(err)
	}
	var answer [8]byte
	if _, err := io.ReadFull(raw, answer[:]); err != nil || answer != header {
		t.Fatalf("protocol header answer %v, %v", answer, err)
	}
	fr := amqp.NewFrameReader(raw, 1<<16)
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	mechs, ok := f.Body.(*amqp.SASLMechanisms)
	if !ok {
		t.Fatalf("got %T, want sasl-mechanisms", f.Body)
	}
	for _, want := range []amqp.Symbol{amqp.SASLAnonymous, amqp.SASLMSSBCBS, amqp.SASLPlain} {
		found := false
		for _, m := range mechs.Mechanisms {
			found = found || m == want
		}
		if !found {
			t.Errorf("mechanisms %v lack %s", mechs.Mechanisms, want)
		}
	}
	init, err := amqp.AppendFrame(nil, amqp.Frame{Type: amqp.FrameTypeSASL, Body: &amqp.SASLInit{Mechanism: amqp.SASLMSSBCBS, Hostname: h.HostName()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Write(init); err != nil {
		t.Fatal(err)
	}
	if f, err = fr.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if outcome, ok := f.Body.(*amqp.SASLOutcome); !ok || outcome.Code != amqp.SASLCodeOK {
		t.Errorf("got %#v, want sasl-outcome ok", f.Body)
	}
}

// TestAMQPZeroCreditReceiver checks a device whose request link grants no
// credit: every call ends with 504101 at its response timeout, and the
// requests the hub could not send are released with their calls (see
// TestGoAMQPSendWaitsForCredit in internal/amqp for the release itself).
func TestAMQPZeroCreditReceiver(t *testing.T) {
	const calls = 20
	h := startHub(t, Options{Devices: []string{"dev-1"}})
	c := mustDialAMQP(t, h, false)
	c.authenticate("dev-1", time.Now().Add(time.Hour))
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	props := map[string]any{"com.microsoft:api-version": "2021-04-12", "com.microsoft:channel-correlation-id": randomChannelID()}
	if _, err := c.session.NewReceiver(ctx, methodPath("dev-1"), &goamqp.ReceiverOptions{Properties: props, Credit: -1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.session.NewSender(ctx, methodPath("dev-1"), &goamqp.SenderOptions{Properties: props}); err != nil {
		t.Fatal(err)
	}
	waitSubscribed(t, h, "dev-1")
	payload := json.RawMessage(`"` + strings.Repeat("a", maxMethodPayload-2) + `"`)
	var wg sync.WaitGroup
	defer wg.Wait()
	results := make([]<-chan callOutcome, calls)
	begin := time.Now()
	for i := range results {
		results[i] = invokeAsync(t, &wg, h, "dev-1", MethodCall{MethodName: "m", Payload: payload, ResponseTimeoutInSeconds: minResponseTimeout})
	}
	for _, done := range results {
		r := awaitCall(t, done, minResponseTimeout*time.Second+waitTimeout)
		wantServiceError(t, r.err, 504101)
	}
	t.Logf("%d calls of %d bytes to a device without credit ended in %v", calls, len(payload), time.Since(begin).Round(time.Millisecond))
}
