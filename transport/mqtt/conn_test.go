package mqtt

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/internal/errtest"
	"github.com/directmethods/iotdevice/internal/leakcheck"
	"github.com/directmethods/iotdevice/internal/sastoken"
	"github.com/directmethods/iotdevice/internal/testcred"
	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport"
	"github.com/eclipse/paho.mqtt.golang/packets"
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
// hub at 127.0.0.1:port as its gateway.
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

// dialed connects a device to a fresh hub and returns both ends.
func dialed(t *testing.T, opts *Options) (transport.Conn, *session) {
	t.Helper()
	h := startHub(t, hubScript{})
	c, err := NewDialer(opts).Dial(dialCtx(t), testConfig(t, h.port(), newCountingCredential(t)))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, receive(t, h.sessions, "session")
}

func TestDialConnectPacket(t *testing.T) {
	tests := []struct {
		name      string
		moduleID  string
		userAgent string
		keepAlive time.Duration
		wantUser  string
		wantID    string
		wantKeep  uint16
	}{
		{name: "device", wantUser: testHub + "/device-1/?api-version=2021-04-12", wantID: "device-1", keepAlive: 30 * time.Second, wantKeep: 30},
		{name: "device with user agent", userAgent: "iotdevice/0.1 (go; linux)", keepAlive: 45 * time.Second, wantKeep: 45,
			wantUser: testHub + "/device-1/?api-version=2021-04-12&DeviceClientType=iotdevice%2F0.1+%28go%3B+linux%29", wantID: "device-1"},
		{name: "module", moduleID: "mod-a", wantUser: testHub + "/device-1/mod-a/?api-version=2021-04-12", wantID: "device-1/mod-a", wantKeep: 30},
		{name: "module with user agent", moduleID: "mod-a", userAgent: "ua", keepAlive: 2 * time.Minute, wantKeep: 120,
			wantUser: testHub + "/device-1/mod-a/?api-version=2021-04-12&DeviceClientType=ua", wantID: "device-1/mod-a"},
		// IoT Hub waits at most 1767 s, 1.5 times 1178 s.
		{name: "keep-alive above the hub's", keepAlive: time.Hour, wantKeep: 1178,
			wantUser: testHub + "/device-1/?api-version=2021-04-12", wantID: "device-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startHub(t, hubScript{})
			cred := newCountingCredential(t)
			cfg := testConfig(t, h.port(), cred)
			cfg.ModuleID, cfg.UserAgent, cfg.KeepAlive = tt.moduleID, tt.userAgent, tt.keepAlive
			c, err := NewDialer(nil).Dial(dialCtx(t), cfg)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.Close()
			s := receive(t, h.sessions, "session")

			type connectFields struct {
				ProtocolName    string
				ProtocolVersion byte
				ClientID        string
				Username        string
				UsernameFlag    bool
				PasswordFlag    bool
				CleanSession    bool
				Keepalive       uint16
				WillFlag        bool
			}
			got := connectFields{s.connect.ProtocolName, s.connect.ProtocolVersion, s.connect.ClientIdentifier, s.connect.Username,
				s.connect.UsernameFlag, s.connect.PasswordFlag, s.connect.CleanSession, s.connect.Keepalive, s.connect.WillFlag}
			want := connectFields{"MQTT", 4, tt.wantID, tt.wantUser, true, true, true, tt.wantKeep, false}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("CONNECT (-want +got):\n%s", diff)
			}

			tok, err := sastoken.Parse(string(s.connect.Password))
			if err != nil {
				t.Fatalf("password is not a SAS token: %v", err)
			}
			if err := tok.Verify(testKey, time.Now()); err != nil {
				t.Errorf("token does not verify: %v", err)
			}
			if want := sas.Resource(testHub, "device-1", tt.moduleID); tok.Resource != want {
				t.Errorf("token resource = %q, want %q", tok.Resource, want)
			}
			if n := cred.Tokens(); n != 1 {
				t.Errorf("Token called %d times per Dial, want 1", n)
			}

			sub := receive(t, s.subscribes, "SUBSCRIBE")
			if diff := cmp.Diff([]string{"$iothub/methods/POST/#"}, sub.Topics); diff != "" {
				t.Errorf("subscribed filters (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]byte{0}, sub.Qoss); diff != "" {
				t.Errorf("subscribed QoS (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDialReturnsOnlyAfterSuback(t *testing.T) {
	gate := make(chan struct{})
	h := startHub(t, hubScript{subackGate: gate})
	type result struct {
		conn          transport.Conn
		err           error
		subackWasSent bool
	}
	done := make(chan result, 1)
	var sess atomic.Pointer[session]
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { // owned by the test; joined by wg
		c, err := NewDialer(nil).Dial(dialCtx(t), testConfig(t, h.port(), newCountingCredential(t)))
		r := result{conn: c, err: err}
		if s := sess.Load(); s != nil {
			r.subackWasSent = s.subackSent.Load()
		}
		done <- r
	})
	s := receive(t, h.sessions, "session")
	sess.Store(s)
	receive(t, s.subscribes, "SUBSCRIBE")
	select {
	case r := <-done:
		t.Fatalf("Dial returned before the SUBACK was sent (err %v)", r.err)
	default:
	}
	close(gate)
	r := receive(t, done, "Dial")
	if r.err != nil {
		t.Fatalf("Dial: %v", r.err)
	}
	defer r.conn.Close()
	if !r.subackWasSent {
		t.Error("Dial returned before the hub sent the SUBACK")
	}
}

func TestRequestAndResponse(t *testing.T) {
	tests := []struct {
		name    string
		opts    *Options
		wantQoS byte
	}{
		{"answers at QoS 1 by default", nil, 1},
		{"answers at QoS 0 when asked", &Options{AnswerAtMostOnce: true}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s := dialed(t, tt.opts)
			s.request(t, "$iothub/methods/POST/turnOnFan/?$rid=1f", []byte(`{"speed":2}`))
			s.request(t, "$iothub/methods/POST/getFanState/?$rid=20", nil)

			ctx := dialCtx(t)
			var got []*transport.MethodRequest
			for range 2 {
				req, err := c.Receive(ctx)
				if err != nil {
					t.Fatalf("Receive: %v", err)
				}
				got = append(got, req)
			}
			want := []*transport.MethodRequest{
				{Name: "turnOnFan", RequestID: "1f", Payload: []byte(`{"speed":2}`)},
				{Name: "getFanState", RequestID: "20"},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}

			if err := c.Respond(ctx, got[0], 200, []byte(`{"on":true,"speed":2}`)); err != nil {
				t.Fatalf("Respond: %v", err)
			}
			pub := receive(t, s.publishes, "response")
			type published struct {
				Topic   string
				Payload string
				QoS     byte
				Retain  bool
			}
			if diff := cmp.Diff(published{"$iothub/methods/res/200/?$rid=1f", `{"on":true,"speed":2}`, tt.wantQoS, false},
				published{pub.TopicName, string(pub.Payload), pub.Qos, pub.Retain}); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
		})
	}
}

// TestConnackRefusals checks the sentinel each refused CONNACK wraps, and
// that it wraps no other: ErrUnauthorized stops the client, ErrServerBusy
// and an error wrapping no sentinel lead to a new dial. IoT Hub refuses a
// wrong key and an identity it does not know alike, so the text of a
// refusal for good names both.
func TestConnackRefusals(t *testing.T) {
	bothCauses := []string{"wrong key", "not registered"}
	tests := []struct {
		code     byte
		sentinel error    // nil: none, so the client dials again
		says     []string // in the error's text
	}{
		{packets.ErrRefusedBadProtocolVersion, nil, nil},
		{packets.ErrRefusedIDRejected, transport.ErrUnauthorized, bothCauses},
		{packets.ErrRefusedServerUnavailable, transport.ErrServerBusy, nil},
		{packets.ErrRefusedBadUsernameOrPassword, transport.ErrUnauthorized, bothCauses},
		{packets.ErrRefusedNotAuthorised, transport.ErrUnauthorized, bothCauses},
	}
	for _, tt := range tests {
		t.Run(packets.ConnackReturnCodes[tt.code], func(t *testing.T) {
			h := startHub(t, hubScript{connackCode: tt.code})
			c, err := NewDialer(nil).Dial(dialCtx(t), testConfig(t, h.port(), newCountingCredential(t)))
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded, want a refusal")
			}
			errtest.WantOnly(t, err, tt.sentinel)
			for _, s := range tt.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Dial = %q, which does not say %q", err, s)
				}
			}
		})
	}
}

func TestSubscriptionRefused(t *testing.T) {
	h := startHub(t, hubScript{subackCode: 0x80})
	c, err := NewDialer(nil).Dial(dialCtx(t), testConfig(t, h.port(), newCountingCredential(t)))
	if err == nil {
		c.Close()
		t.Fatal("Dial succeeded with a refused subscription")
	}
	s := receive(t, h.sessions, "session")
	receive(t, s.done, "the client to disconnect")
}

// barrier makes sure every request the hub wrote so far has been queued:
// it publishes one more request, at QoS 1, and waits for its PUBACK, which
// the adapter sends once it has read it, and so the requests before it.
// Receive returns the barrier request after them, with request id
// "barrier".
func barrier(t *testing.T, s *session) {
	t.Helper()
	s.publish(t, "$iothub/methods/POST/barrier/?$rid=barrier", 1, 4242, false, nil)
	for id := receive(t, s.pubacks, "the barrier's PUBACK"); id != 4242; id = receive(t, s.pubacks, "the barrier's PUBACK") {
	}
}

func TestMalformedTopicsDropped(t *testing.T) {
	c, s := dialed(t, nil)
	for _, topic := range []string{
		"devices/device-1/messages/devicebound/x",
		"$iothub/methods/POST/",
		"$iothub/methods/POST/m",
		"$iothub/methods/POST//?$rid=1",
		"$iothub/methods/POST/m/?$rid=",
		"$iothub/methods/POST/a/b/?$rid=1",
	} {
		s.request(t, topic, []byte(`{}`))
	}
	s.request(t, "$iothub/methods/POST/good/?$rid=7", []byte(`{}`))
	req, err := c.Receive(dialCtx(t))
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if req.Name != "good" || req.RequestID != "7" {
		t.Errorf("Receive = %q/%q, want good/7", req.Name, req.RequestID)
	}
	if err := c.Respond(dialCtx(t), req, 200, []byte(`{}`)); err != nil {
		t.Errorf("Respond after malformed topics: %v", err)
	}
}

func TestCertificateCredential(t *testing.T) {
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
	s := receive(t, h.sessions, "session")
	if s.connect.PasswordFlag || len(s.connect.Password) != 0 {
		t.Errorf("CONNECT carries a password (flag %v) with a certificate credential", s.connect.PasswordFlag)
	}
	if len(s.peerCerts) != 1 || !bytes.Equal(s.peerCerts[0].Raw, cert.Certificate[0]) {
		t.Error("the hub did not receive the client certificate")
	}
}

func TestUntrustedServerCertificateIsFatal(t *testing.T) {
	cfg := testConfig(t, startHub(t, hubScript{}).port(), newCountingCredential(t))
	cfg.TLSConfig = &tls.Config{RootCAs: x509.NewCertPool()}
	c, err := NewDialer(nil).Dial(dialCtx(t), cfg)
	if err == nil {
		c.Close()
		t.Fatal("Dial succeeded against an untrusted certificate")
	}
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("Dial error = %v, want an x509.UnknownAuthorityError in the chain", err)
	}
	var verify *tls.CertificateVerificationError
	if !errors.As(err, &verify) {
		t.Errorf("Dial error = %v, want a *tls.CertificateVerificationError in the chain (the client stops on it)", err)
	}
}

func TestDialCancelledWhileWaitingForConnack(t *testing.T) {
	h := startHub(t, hubScript{noConnack: true})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { // owned by the test; joined by wg
		c, err := NewDialer(nil).Dial(ctx, testConfig(t, h.port(), newCountingCredential(t)))
		if c != nil {
			c.Close()
		}
		done <- err
	})
	s := receive(t, h.sessions, "CONNECT")
	cancel()
	err := receive(t, done, "Dial to return after cancel")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Dial error = %v, want context.Canceled", err)
	}
	receive(t, s.done, "the aborted connection to close")
}

func TestDialConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	c, err := NewDialer(nil).Dial(dialCtx(t), testConfig(t, port, newCountingCredential(t)))
	if err == nil {
		c.Close()
		t.Fatal("Dial to a closed port succeeded")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("Dial error = %v, want it to wrap syscall.ECONNREFUSED", err)
	}
	errtest.WantRetried(t, err)
}

func TestDialTokenError(t *testing.T) {
	cred, err := sas.NewTokenCredential(sas.Sign(testKey, sas.Resource(testHub, "device-1", ""), "", time.Now().Add(-time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, 1, cred)
	_, err = NewDialer(nil).Dial(dialCtx(t), cfg)
	if !errors.Is(err, sas.ErrTokenExpired) {
		t.Fatalf("Dial with an expired token = %v, want sas.ErrTokenExpired", err)
	}
}

func TestLogsCarryNoSecrets(t *testing.T) {
	var buf syncBuffer
	h := startHub(t, hubScript{})
	cfg := testConfig(t, h.port(), newCountingCredential(t))
	cfg.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := NewDialer(nil).Dial(dialCtx(t), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	s := receive(t, h.sessions, "session")
	s.request(t, "$iothub/methods/POST/m/?$rid=1", []byte(`{"secret-payload":1}`))
	req, err := c.Receive(dialCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Respond(dialCtx(t), req, 200, []byte(`{"secret-answer":1}`)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	logs := buf.String()
	for _, secret := range []string{"SharedAccessSignature", "sig=", "secret-payload", "secret-answer"} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain %q:\n%s", secret, logs)
		}
	}
	if strings.Count(logs, "device_id=") > strings.Count(logs, "\n") {
		t.Errorf("an attribute is repeated:\n%s", logs)
	}
	for _, want := range []string{"transport=mqtt", "method=m", "request_id=1"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestDialCancelledWhileWaitingForSuback(t *testing.T) {
	gate := make(chan struct{})
	defer func() {
		if gate != nil {
			close(gate)
		}
	}()
	h := startHub(t, hubScript{subackGate: gate})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { // owned by the test; joined by wg
		c, err := NewDialer(nil).Dial(ctx, testConfig(t, h.port(), newCountingCredential(t)))
		if c != nil {
			c.Close()
		}
		done <- err
	})
	s := receive(t, h.sessions, "session")
	receive(t, s.subscribes, "SUBSCRIBE")
	cancel()
	if err := receive(t, done, "Dial to return after cancel"); !errors.Is(err, context.Canceled) {
		t.Errorf("Dial error = %v, want context.Canceled", err)
	}
	// Dial disconnected before returning. The hub, held in its SUBACK
	// gate, reads the DISCONNECT or EOF once the gate opens.
	close(gate)
	gate = nil
	receive(t, s.done, "the hub to see the disconnect")
}

func TestConnLostDrainsBufferedRequests(t *testing.T) {
	c, s := dialed(t, nil)
	s.request(t, "$iothub/methods/POST/m/?$rid=9", nil)
	barrier(t, s)
	s.conn.Close()
	ids, err := receiveEnd(t, c)
	if diff := cmp.Diff([]string{"9", "barrier"}, ids); diff != "" {
		t.Errorf("requests drained (-want +got):\n%s", diff)
	}
	if !errors.Is(err, transport.ErrConnLost) {
		t.Errorf("Receive once drained = %v, want ErrConnLost", err)
	}
}
