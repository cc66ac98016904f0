package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"

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

// TestNetworkDialsWithPreparedTLS runs a session over Options.Network and
// checks that it received the address with its default port, the prepared
// TLS configuration and the Config.
func TestNetworkDialsWithPreparedTLS(t *testing.T) {
	h := startHub(t, hubScript{})
	var rec recordingNetwork
	cfg := testConfig(t, 0, newCountingCredential(t)) // no Port: the Network's default applies
	c, err := NewDialer(&Options{Network: rec.network(h.port())}).Dial(dialCtx(t), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	s := receive(t, h.sessions, "session")
	s.request(t, "$iothub/methods/POST/ping/?$rid=7", []byte(`1`))
	req, err := c.Receive(dialCtx(t))
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if err := c.Respond(dialCtx(t), req, 200, []byte(`2`)); err != nil {
		t.Fatalf("Respond: %v", err)
	}
	if got := receive(t, s.publishes, "response").TopicName; got != "$iothub/methods/res/200/?$rid=7" {
		t.Errorf("response topic = %q", got)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	want := []networkDial{{Address: h.ln.Addr().String(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12, Config: cfg}}
	if diff := cmp.Diff(want, rec.recorded(), cmp.Comparer(func(a, b *transport.Config) bool { return a == b })); diff != "" {
		t.Errorf("dials (-want +got):\n%s", diff)
	}
}

// TestNetworkDialError checks that a Network's dial error reaches the
// caller of Dial with its cause and the endpoint.
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
	errtest.WantRetried(t, err)
}

func TestDefaultNetworkIsTLS(t *testing.T) {
	got := (*Options)(nil).withDefaults().Network
	if got.Name != "tls" || got.DefaultPort != 8883 {
		t.Errorf("default network = %q on port %d, want tls on 8883", got.Name, got.DefaultPort)
	}
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
