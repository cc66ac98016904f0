package amqp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	iamqp "github.com/directmethods/iotdevice/internal/amqp"
	"github.com/directmethods/iotdevice/internal/errtest"
	"github.com/directmethods/iotdevice/internal/netdial"
	"github.com/directmethods/iotdevice/transport"
	"github.com/google/go-cmp/cmp"
)

// recordingNetwork is a Network over TLS that records each dial.
type recordingNetwork struct {
	mu    sync.Mutex
	dials []networkDial
}

// networkDial is what one call of Network.Dial received.
type networkDial struct {
	Address    string
	ServerName string
	MinVersion uint16
	Config     *transport.Config
}

func (r *recordingNetwork) network(defaultPort int) *transport.Network {
	return &transport.Network{Name: "recording", DefaultPort: defaultPort, Dial: r.dial}
}

func (r *recordingNetwork) dial(ctx context.Context, address string, tlsConfig *tls.Config, cfg *transport.Config) (net.Conn, error) {
	r.mu.Lock()
	r.dials = append(r.dials, networkDial{Address: address, ServerName: tlsConfig.ServerName, MinVersion: tlsConfig.MinVersion, Config: cfg})
	r.mu.Unlock()
	d := tls.Dialer{Config: tlsConfig}
	return d.DialContext(ctx, "tcp", address)
}

func (r *recordingNetwork) recorded() []networkDial {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]networkDial(nil), r.dials...)
}

// lockedBuffer collects log output written from several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestNetworkDialsWithPreparedTLS runs a method call over Options.Network
// and checks that it received the address with its default port, the
// prepared TLS configuration and the Config, and that the logs name it.
func TestNetworkDialsWithPreparedTLS(t *testing.T) {
	h := startHub(t, hubScript{})
	var rec recordingNetwork
	cfg := testConfig(t, 0, newCountingCredential(t)) // no Port: the Network's default applies
	var logs lockedBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	c, err := NewDialer(&Options{Network: rec.network(h.port())}).Dial(dialCtx(t), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	hc := receive(t, h.conns, "connection")
	link := receive(t, hc.requestLink, "request link")
	hc.sendRequest(t, link, request(iamqp.UUID{9}, "over-network", []byte(`1`)))
	req := receiveRequest(t, c)
	if diff := cmp.Diff("over-network", req.Name); diff != "" {
		t.Errorf("method name (-want +got):\n%s", diff)
	}
	if err := c.Respond(dialCtx(t), req, 200, []byte(`2`)); err != nil {
		t.Fatalf("Respond: %v", err)
	}
	d := receive(t, hc.responses, "response")
	if diff := cmp.Diff(int32(200), d.Message.ApplicationProperties["IoThub-status"]); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	want := []networkDial{{Address: h.ln.Addr().String(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12, Config: cfg}}
	if diff := cmp.Diff(want, rec.recorded(), cmp.Comparer(func(a, b *transport.Config) bool { return a == b })); diff != "" {
		t.Errorf("dials (-want +got):\n%s", diff)
	}
	if got := logs.String(); !strings.Contains(got, "transport=amqp-recording") || !strings.Contains(got, "network=recording") {
		t.Errorf("logs do not name transport=amqp-recording and network=recording:\n%s", got)
	}
}

// TestNetworkDialError checks that a Network's dial error reaches the
// caller of Dial with its cause and the address.
func TestNetworkDialError(t *testing.T) {
	errRefused := errors.New("test network refused")
	network := &transport.Network{Name: "failing", DefaultPort: 1234, Dial: func(context.Context, string, *tls.Config, *transport.Config) (net.Conn, error) {
		return nil, errRefused
	}}
	c, err := NewDialer(&Options{Network: network}).Dial(dialCtx(t), testConfig(t, 0, newCountingCredential(t)))
	if err == nil {
		c.Close()
		t.Fatal("Dial succeeded over a failing network")
	}
	if !errors.Is(err, errRefused) {
		t.Errorf("Dial error = %v, want it to wrap the network's error", err)
	}
	if want := "127.0.0.1:1234"; !strings.Contains(err.Error(), want) {
		t.Errorf("Dial error = %v, want it to name %s", err, want)
	}
	errtest.WantRetried(t, err)
}

// TestNetworkWithoutDial checks that a Network missing its Dial function
// fails Dial with the error of Network.Validate, not a panic.
func TestNetworkWithoutDial(t *testing.T) {
	c, err := NewDialer(&Options{Network: &transport.Network{Name: "empty"}}).Dial(dialCtx(t), testConfig(t, 0, newCountingCredential(t)))
	if err == nil {
		c.Close()
		t.Fatal("Dial succeeded over a network without Dial")
	}
	if want := netdial.Check(&transport.Network{Name: "empty"}); !strings.Contains(err.Error(), want.Error()) {
		t.Errorf("Dial error = %v, want it to say %q", err, want)
	}
}

func TestDefaultNetworkIsTLS(t *testing.T) {
	got := (*Options)(nil).withDefaults().Network
	if got.Name != "tls" || got.DefaultPort != 5671 {
		t.Errorf("default network = %q on port %d, want tls on 5671", got.Name, got.DefaultPort)
	}
}

func TestNetworkLogName(t *testing.T) {
	tests := []struct {
		network *transport.Network
		want    string
	}{
		{tlsNetwork, "amqp"},
		{&transport.Network{Name: "ws"}, "amqp-ws"},
		{&transport.Network{}, "amqp"},
	}
	for _, tt := range tests {
		if got := logName(tt.network); got != tt.want {
			t.Errorf("logName of %q = %q, want %q", tt.network.Name, got, tt.want)
		}
	}
}
