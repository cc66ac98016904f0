package amqp

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	iamqp "github.com/directmethods/iotdevice/internal/amqp"
	"github.com/directmethods/iotdevice/internal/errtest"
	"github.com/directmethods/iotdevice/internal/leakcheck"
	"github.com/directmethods/iotdevice/internal/sastoken"
	"github.com/directmethods/iotdevice/internal/testcred"
	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport"
	"github.com/google/go-cmp/cmp"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

const testHub = "test-hub.azure-devices.net"

var testKey = bytes.Repeat([]byte{0x5a}, 32)

// newCountingCredential returns a credential that signs tokens with
// testKey and counts them.
func newCountingCredential(t *testing.T) *testcred.CountingCredential {
	t.Helper()
	k, err := sas.NewKeyCredential(base64.StdEncoding.EncodeToString(testKey), "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &testcred.CountingCredential{Credential: k}
}

// testConfig returns a Config for a device of testHub reached through the
// fake hub at 127.0.0.1:port as its gateway.
func testConfig(t *testing.T, port int, cred sas.Credential) *transport.Config {
	t.Helper()
	return &transport.Config{
		HostName:        testHub,
		GatewayHostName: "127.0.0.1",
		Port:            port,
		DeviceID:        "device-1",
		Credential:      cred,
		TLSConfig:       &tls.Config{RootCAs: pki().roots},
		KeepAlive:       30 * time.Second,
		Logger:          slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

func dialCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// dialed connects a device to a fresh hub and returns the Conn, the hub's
// view of the connection and the link the hub sends requests on.
func dialed(t *testing.T, opts *Options) (transport.Conn, *hubConn, *iamqp.Link) {
	t.Helper()
	return dialedScript(t, hubScript{}, opts)
}

// dialedScript is dialed with a scripted hub.
func dialedScript(t *testing.T, script hubScript, opts *Options) (transport.Conn, *hubConn, *iamqp.Link) {
	t.Helper()
	h := startHub(t, script)
	c, err := NewDialer(opts).Dial(dialCtx(t), testConfig(t, h.port(), newCountingCredential(t)))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	hc := receive(t, h.conns, "connection")
	return c, hc, receive(t, hc.requestLink, "request link")
}

// request builds a well-formed method request.
func request(id iamqp.UUID, name string, data ...[]byte) *iamqp.Message {
	return &iamqp.Message{
		Properties:            &iamqp.Properties{CorrelationID: id},
		ApplicationProperties: map[string]any{"IoThub-methodname": name},
		Data:                  data,
	}
}

// props converts attach properties to a plain map for comparison.
func props(m iamqp.Map) map[string]any {
	out := map[string]any{}
	for _, kv := range m {
		out[fmt.Sprint(kv.Key)] = kv.Value
	}
	return out
}

func receiveRequest(t *testing.T, c transport.Conn) *transport.MethodRequest {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	req, err := c.Receive(ctx)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	return req
}

func receiveError(t *testing.T, c transport.Conn) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	req, err := c.Receive(ctx)
	if err == nil {
		t.Fatalf("Receive returned request %q, want an error", req.Name)
	}
	if ctx.Err() != nil {
		t.Fatalf("Receive did not fail in time: %v", err)
	}
	return err
}

func TestDialPutToken(t *testing.T) {
	tests := []struct {
		name     string
		moduleID string
	}{
		{name: "device"},
		{name: "module", moduleID: "mod-a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startHub(t, hubScript{})
			cred := newCountingCredential(t)
			cfg := testConfig(t, h.port(), cred)
			cfg.ModuleID = tt.moduleID
			c, err := NewDialer(nil).Dial(dialCtx(t), cfg)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.Close()
			hc := receive(t, h.conns, "connection")
			put := receive(t, hc.putTokens, "put-token")

			audience := sas.Resource(testHub, "device-1", tt.moduleID)
			wantProps := map[string]any{"operation": "put-token", "type": "servicebus.windows.net:sastoken", "name": audience}
			if diff := cmp.Diff(wantProps, put.ApplicationProperties); diff != "" {
				t.Errorf("put-token application properties (-want +got):\n%s", diff)
			}
			if put.Properties == nil {
				t.Fatal("put-token has no properties")
			}
			id, ok := put.Properties.MessageID.(string)
			if _, isUUID := parseUUID(id); !ok || !isUUID {
				t.Errorf("message-id = %#v, want a uuid string", put.Properties.MessageID)
			}
			if put.Properties.ReplyTo != "cbs" {
				t.Errorf("reply-to = %q, want cbs", put.Properties.ReplyTo)
			}
			if len(put.Data) != 0 || len(put.Sequence) != 0 {
				t.Errorf("put-token has data or sequence sections")
			}
			token, ok := put.Value.(string)
			if !ok {
				t.Fatalf("put-token body is %T, want an amqp-value string", put.Value)
			}
			tok, err := sastoken.Parse(token)
			if err != nil {
				t.Fatalf("body is not a SAS token: %v", err)
			}
			if err := tok.Verify(testKey, time.Now()); err != nil {
				t.Errorf("token does not verify: %v", err)
			}
			if tok.Resource != audience {
				t.Errorf("token resource = %q, want %q", tok.Resource, audience)
			}
			if n := cred.Tokens(); n != 1 {
				t.Errorf("Token called %d times per Dial, want 1", n)
			}
			mechanism, _ := hc.conn.SASL()
			if mechanism != iamqp.SASLAnonymous {
				t.Errorf("SASL mechanism = %q, want ANONYMOUS", mechanism)
			}
			if got := hc.conn.RemoteOpen().Hostname; got != testHub {
				t.Errorf("open hostname = %q, want %q", got, testHub)
			}
		})
	}
}

// TestDialPutTokenRefused checks the sentinel each refused put-token
// wraps, and that it wraps no other: ErrUnauthorized and
// ErrIdentityNotFound stop the client, ErrThrottled makes it wait longer,
// ErrServerBusy and an error wrapping no sentinel lead to a new dial.
func TestDialPutTokenRefused(t *testing.T) {
	tests := []struct {
		status   int
		sentinel error // nil: none, so the client dials again
	}{
		{401, transport.ErrUnauthorized},
		{403, transport.ErrUnauthorized},
		{404, transport.ErrIdentityNotFound},
		{429, transport.ErrThrottled},
		{503, transport.ErrServerBusy},
		{500, nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			h := startHub(t, hubScript{putTokenStatus: func(int) int { return tt.status }})
			c, err := NewDialer(nil).Dial(dialCtx(t), testConfig(t, h.port(), newCountingCredential(t)))
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded with a refused token")
			}
			errtest.WantOnly(t, err, tt.sentinel)
			if !strings.Contains(err.Error(), fmt.Sprint(tt.status)) {
				t.Errorf("Dial error %q does not name the status", err)
			}
		})
	}
}

func TestDialMethodLinks(t *testing.T) {
	tests := []struct {
		name      string
		moduleID  string
		userAgent string
		wantAddr  string
	}{
		{name: "device", wantAddr: "/devices/device-1/methods/devicebound"},
		{name: "device with user agent", userAgent: "iotdevice/0.1 (go; linux)", wantAddr: "/devices/device-1/methods/devicebound"},
		{name: "module", moduleID: "mod-a", userAgent: "ua", wantAddr: "/devices/device-1/modules/mod-a/methods/devicebound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startHub(t, hubScript{})
			cfg := testConfig(t, h.port(), newCountingCredential(t))
			cfg.ModuleID, cfg.UserAgent = tt.moduleID, tt.userAgent
			c, err := NewDialer(nil).Dial(dialCtx(t), cfg)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.Close()
			hc := receive(t, h.conns, "connection")

			var receiver, sender *iamqp.Attach // the client's roles
			for receiver == nil || sender == nil {
				a := receive(t, hc.attaches, "attach")
				switch {
				case a.Role == iamqp.RoleReceiver && a.Source != nil && a.Source.Address == tt.wantAddr:
					receiver = a
				case a.Role == iamqp.RoleSender && a.Target != nil && a.Target.Address == tt.wantAddr:
					sender = a
				case a.Source != nil && a.Source.Address == "$cbs", a.Target != nil && a.Target.Address == "$cbs":
				default:
					t.Fatalf("unexpected attach %+v", a)
				}
			}
			rp, sp := props(receiver.Properties), props(sender.Properties)
			channel, _ := rp["com.microsoft:channel-correlation-id"].(string)
			if _, ok := parseUUID(strings.TrimPrefix(channel, "methods:")); !ok || !strings.HasPrefix(channel, "methods:") {
				t.Errorf("channel-correlation-id = %q, want methods:<uuid>", channel)
			}
			want := map[string]any{"com.microsoft:api-version": "2021-04-12", "com.microsoft:channel-correlation-id": channel}
			if tt.userAgent != "" {
				want["com.microsoft:client-version"] = tt.userAgent
			}
			if diff := cmp.Diff(want, rp); diff != "" {
				t.Errorf("receiver attach properties (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(want, sp); diff != "" {
				t.Errorf("sender attach properties (-want +got):\n%s", diff)
			}
			if receiver.RcvSettleMode != iamqp.ReceiverSettleFirst {
				t.Errorf("receiver rcv-settle-mode = %d, want first", receiver.RcvSettleMode)
			}
			if sender.SndSettleMode != iamqp.SenderSettleUnsettled {
				t.Errorf("sender snd-settle-mode = %d, want unsettled", sender.SndSettleMode)
			}
			if receiver.Name == sender.Name {
				t.Errorf("both links are named %q", receiver.Name)
			}
		})
	}
}

// TestDialMethodLinkRefused checks the sentinel each refused method link
// wraps, and that it wraps no other: ErrUnauthorized and
// ErrIdentityNotFound stop the client, ErrThrottled makes it wait longer,
// ErrServerBusy and ErrConnLost lead to a new dial.
func TestDialMethodLinkRefused(t *testing.T) {
	tests := []struct {
		condition iamqp.Symbol
		sentinel  error
	}{
		{iamqp.ErrCondUnauthorizedAccess, transport.ErrUnauthorized},
		{iamqp.ErrCondNotFound, transport.ErrIdentityNotFound},
		{iamqp.ErrCondResourceLimitExceeded, transport.ErrThrottled},
		{"com.microsoft:device-container-throttled", transport.ErrThrottled},
		{"com.microsoft:timeout", transport.ErrServerBusy},
		{iamqp.ErrCondInternalError, transport.ErrConnLost},
	}
	for _, tt := range tests {
		t.Run(string(tt.condition), func(t *testing.T) {
			h := startHub(t, hubScript{refuseMethods: &iamqp.Error{Condition: tt.condition, Description: "scripted"}})
			c, err := NewDialer(nil).Dial(dialCtx(t), testConfig(t, h.port(), newCountingCredential(t)))
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded with refused method links")
			}
			errtest.WantOnly(t, err, tt.sentinel)
		})
	}
}

func TestDialWaitsForBothLinks(t *testing.T) {
	gate := make(chan struct{})
	h := startHub(t, hubScript{senderAttachGate: gate})
	type result struct {
		c   transport.Conn
		err error
	}
	done := make(chan result, 1)
	go func() { // owned by the test; ends when Dial returns, awaited below
		c, err := NewDialer(nil).Dial(dialCtx(t), testConfig(t, h.port(), newCountingCredential(t)))
		done <- result{c, err}
	}()
	hc := receive(t, h.conns, "connection")
	hc.waitSenderAttach(t)
	select {
	case r := <-done:
		if r.c != nil {
			r.c.Close()
		}
		t.Fatalf("Dial returned (err %v) before the sender link was attached", r.err)
	default:
	}
	close(gate)
	r := receive(t, done, "Dial")
	if r.err != nil {
		t.Fatalf("Dial: %v", r.err)
	}
	r.c.Close()
}

func TestDialCanceled(t *testing.T) {
	gate := make(chan struct{}) // never opened: the sender attach hangs
	h := startHub(t, hubScript{senderAttachGate: gate})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { // owned by the test; ends when Dial returns, awaited below
		c, err := NewDialer(nil).Dial(ctx, testConfig(t, h.port(), newCountingCredential(t)))
		if c != nil {
			c.Close()
		}
		done <- err
	}()
	hc := receive(t, h.conns, "connection")
	hc.waitSenderAttach(t)
	cancel()
	err := receive(t, done, "Dial to return after cancel")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Dial error %v does not wrap context.Canceled", err)
	}
	receive(t, hc.served, "hub connection to end")
}

// waitSenderAttach waits for the client to attach the method link it
// sends responses on.
func (hc *hubConn) waitSenderAttach(t *testing.T) {
	t.Helper()
	for {
		a := receive(t, hc.attaches, "attach of the method sender")
		if a.Role == iamqp.RoleSender && a.Target != nil && strings.HasSuffix(a.Target.Address, "/methods/devicebound") {
			return
		}
	}
}

func TestRequestAndResponse(t *testing.T) {
	tests := []struct {
		name        string
		opts        *Options
		wantSettled bool
	}{
		{"answers unsettled by default", nil, false},
		{"answers pre-settled when asked", &Options{AnswerAtMostOnce: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, hc, link := dialed(t, tt.opts)
			id := iamqp.UUID{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0x4d, 0xef, 0x81, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}
			state := hc.sendRequest(t, link, request(id, "reboot", []byte(`{"delay":`), []byte(`5}`)))
			if _, ok := state.(*iamqp.Accepted); !ok {
				t.Errorf("request outcome = %#v, want accepted", state)
			}
			req := receiveRequest(t, c)
			want := &transport.MethodRequest{
				Name:      "reboot",
				RequestID: "12345678-9abc-4def-8123-456789abcdef",
				Payload:   []byte(`{"delay":5}`),
				Handle:    goamqp.UUID(id),
			}
			if diff := cmp.Diff(want, req); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}

			if err := c.Respond(dialCtx(t), req, 200, []byte(`{"ok":true}`)); err != nil {
				t.Fatalf("Respond: %v", err)
			}
			d := receive(t, hc.responses, "response")
			type response struct {
				CorrelationID any
				Status        any
				Data          [][]byte
				Settled       bool
			}
			got := response{d.Message.Properties.CorrelationID, d.Message.ApplicationProperties["IoThub-status"], d.Message.Data, d.Settled}
			wantResp := response{id, int32(200), [][]byte{[]byte(`{"ok":true}`)}, tt.wantSettled}
			if diff := cmp.Diff(wantResp, got); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMalformedRequestsRejected(t *testing.T) {
	c, hc, link := dialed(t, nil)
	id := iamqp.UUID{9}
	tests := []struct {
		name string
		msg  *iamqp.Message
	}{
		{"no correlation id", &iamqp.Message{ApplicationProperties: map[string]any{"IoThub-methodname": "m"}, Data: [][]byte{[]byte("{}")}}},
		{"no method name", &iamqp.Message{Properties: &iamqp.Properties{CorrelationID: id}, Data: [][]byte{[]byte("{}")}}},
		{"method name not a string", &iamqp.Message{Properties: &iamqp.Properties{CorrelationID: id}, ApplicationProperties: map[string]any{"IoThub-methodname": int32(1)}, Data: [][]byte{[]byte("{}")}}},
		{"no data section", &iamqp.Message{Properties: &iamqp.Properties{CorrelationID: id}, ApplicationProperties: map[string]any{"IoThub-methodname": "m"}, Value: "{}"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state := hc.sendRequest(t, link, tt.msg)
			rejected, ok := state.(*iamqp.Rejected)
			if !ok || rejected.Error == nil || rejected.Error.Condition != iamqp.ErrCondDecodeError {
				t.Fatalf("outcome = %#v, want rejected with amqp:decode-error", state)
			}
		})
	}
	// The link keeps working.
	hc.sendRequest(t, link, request(iamqp.UUID{7}, "after", []byte("{}")))
	if req := receiveRequest(t, c); req.Name != "after" {
		t.Errorf("request after the rejected ones = %q, want after", req.Name)
	}
}

func TestRefreshToken(t *testing.T) {
	h := startHub(t, hubScript{})
	cred := newCountingCredential(t)
	c, err := NewDialer(nil).Dial(dialCtx(t), testConfig(t, h.port(), cred))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	hc := receive(t, h.conns, "connection")
	link := receive(t, hc.requestLink, "request link")
	receive(t, hc.putTokens, "first put-token")

	refresher, ok := c.(transport.TokenRefresher)
	if !ok {
		t.Fatal("Conn does not implement transport.TokenRefresher")
	}
	before := time.Now()
	expiry, err := refresher.RefreshToken(dialCtx(t))
	if err != nil {
		t.Fatalf("RefreshToken: %v", err)
	}
	if expiry.Before(before.Add(59*time.Minute)) || expiry.After(before.Add(61*time.Minute)) {
		t.Errorf("expiry = %v, want about an hour from now", expiry)
	}
	put := receive(t, hc.putTokens, "second put-token")
	tok, err := sastoken.Parse(put.Value.(string))
	if err != nil || tok.Verify(testKey, time.Now()) != nil {
		t.Errorf("renewed token does not verify: %v", err)
	}
	if n := cred.Tokens(); n != 2 {
		t.Errorf("Token called %d times, want 2 (Dial and RefreshToken)", n)
	}
	select {
	case other := <-h.conns:
		t.Errorf("RefreshToken opened a second connection %p", other)
	default:
	}
	hc.sendRequest(t, link, request(iamqp.UUID{3}, "after-refresh", []byte("{}")))
	if req := receiveRequest(t, c); req.Name != "after-refresh" {
		t.Errorf("request after refresh = %q", req.Name)
	}
}

func TestRefreshTokenRefused(t *testing.T) {
	h := startHub(t, hubScript{putTokenStatus: func(n int) int {
		if n > 1 {
			return 401
		}
		return 200
	}})
	c, err := NewDialer(nil).Dial(dialCtx(t), testConfig(t, h.port(), newCountingCredential(t)))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	_, err = c.(transport.TokenRefresher).RefreshToken(dialCtx(t))
	if !errors.Is(err, transport.ErrUnauthorized) {
		t.Fatalf("RefreshToken = %v, want an error wrapping ErrUnauthorized", err)
	}
}

func TestHubDetachesLinks(t *testing.T) {
	t.Run("receiver", func(t *testing.T) {
		c, hc, link := dialed(t, nil)
		hc.sendRequest(t, link, request(iamqp.UUID{5}, "buffered", []byte("{}")))
		if err := link.Detach(dialCtx(t), &iamqp.Error{Condition: iamqp.ErrCondDetachForced}); err != nil {
			t.Fatalf("fake hub: detach: %v", err)
		}
		if req := receiveRequest(t, c); req.Name != "buffered" {
			t.Errorf("buffered request = %q", req.Name)
		}
		errtest.WantOnly(t, receiveError(t, c), transport.ErrConnLost)
	})
	t.Run("sender", func(t *testing.T) {
		c, hc, link := dialed(t, nil)
		hc.sendRequest(t, link, request(iamqp.UUID{6}, "m", []byte("{}")))
		req := receiveRequest(t, c)
		responses := receive(t, hc.responseLink, "response link")
		if err := responses.Detach(dialCtx(t), &iamqp.Error{Condition: iamqp.ErrCondDetachForced}); err != nil {
			t.Fatalf("fake hub: detach: %v", err)
		}
		<-responses.Done()
		// The Conn fails at once, with no answer sent: Receive reports it.
		if err := receiveError(t, c); !errors.Is(err, transport.ErrConnLost) {
			t.Errorf("Receive error %v does not wrap ErrConnLost", err)
		}
		if err := c.Respond(dialCtx(t), req, 200, nil); !errors.Is(err, transport.ErrConnLost) {
			t.Fatalf("Respond after detach = %v, want ErrConnLost", err)
		}
	})
}

func TestX509(t *testing.T) {
	h := startHub(t, hubScript{requestCerts: true})
	cert := selfSignedClientCert(t)
	cred, err := sas.NewCertificateCredential(cert)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewDialer(nil).Dial(dialCtx(t), testConfig(t, h.port(), cred))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	hc := receive(t, h.conns, "connection")
	link := receive(t, hc.requestLink, "request link")
	if len(hc.peerCerts) != 1 || !bytes.Equal(hc.peerCerts[0].Raw, cert.Certificate[0]) {
		t.Errorf("client certificate not presented")
	}
	if mechanism, _ := hc.conn.SASL(); mechanism != "" {
		t.Errorf("SASL mechanism = %q, want none", mechanism)
	}
	if n := hc.putTokenN.Load(); n != 0 {
		t.Errorf("%d put-tokens with a certificate credential, want 0", n)
	}
	for range 2 {
		a := receive(t, hc.attaches, "attach")
		if (a.Source != nil && a.Source.Address == "$cbs") || (a.Target != nil && a.Target.Address == "$cbs") {
			t.Errorf("$cbs link attached with a certificate credential")
		}
	}
	expiry, err := c.(transport.TokenRefresher).RefreshToken(dialCtx(t))
	if err != nil || !expiry.IsZero() {
		t.Errorf("RefreshToken = %v, %v; want the zero time and nil", expiry, err)
	}
	hc.sendRequest(t, link, request(iamqp.UUID{4}, "x509", []byte("{}")))
	if req := receiveRequest(t, c); req.Name != "x509" {
		t.Errorf("request = %q", req.Name)
	}
}

func TestUntrustedServerCertificate(t *testing.T) {
	cfg := testConfig(t, startHub(t, hubScript{}).port(), newCountingCredential(t))
	cfg.TLSConfig = &tls.Config{RootCAs: x509EmptyPool()}
	c, err := NewDialer(nil).Dial(dialCtx(t), cfg)
	if err == nil {
		c.Close()
		t.Fatal("Dial trusted an unknown CA")
	}
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("Dial error %v keeps no x509.UnknownAuthorityError", err)
	}
	var verify *tls.CertificateVerificationError
	if !errors.As(err, &verify) {
		t.Errorf("Dial error %v keeps no *tls.CertificateVerificationError (the client stops on it)", err)
	}
}
