package ws

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/directmethods/iotdevice/internal/leakcheck"
	"github.com/directmethods/iotdevice/transport"
	"github.com/google/go-cmp/cmp"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// echoServer starts a TLS server whose WebSocket endpoint at Path accepts
// the given subprotocols and echoes every byte back.
func echoServer(t *testing.T, subprotocols ...string) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != Path {
			http.NotFound(w, r)
			return
		}
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: subprotocols})
		if err != nil {
			return
		}
		if c.Subprotocol() == "" {
			// Keep reading so the client's close is noticed, then end.
			_, _, _ = c.Read(r.Context())
			_ = c.CloseNow()
			return
		}
		nc := websocket.NetConn(r.Context(), c, websocket.MessageBinary)
		_, _ = io.Copy(nc, nc)
		_ = nc.Close()
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func trusting(srv *httptest.Server) *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	return &tls.Config{RootCAs: roots}
}

func address(srv *httptest.Server) string { return srv.Listener.Addr().String() }

func TestDialEchoRoundTrip(t *testing.T) {
	for _, proto := range []string{"mqtt", "MQTT"} {
		t.Run(proto, func(t *testing.T) {
			srv := echoServer(t, "mqtt")
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			c, err := Dial(ctx, address(srv), Options{Subprotocol: proto, TLSConfig: trusting(srv),
				Proxy: noProxy, Header: http.Header{"User-Agent": {"test/1"}}})
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.Close()
			if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
				t.Fatal(err)
			}
			want := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320 KB: above the 256 KB MQTT limit
			writeErr := make(chan error, 1)
			go func() { // owned by the test; joined through writeErr below
				_, err := c.Write(want)
				writeErr <- err
			}()
			got := make([]byte, len(want))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatalf("read: %v", err)
			}
			if err := <-writeErr; err != nil {
				t.Fatalf("write: %v", err)
			}
			if !bytes.Equal(want, got) {
				t.Fatal("echoed bytes differ from the bytes sent")
			}
			if err := c.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
}

func noProxy(*http.Request) (*url.URL, error) { return nil, nil }

func TestDialRefusesMissingSubprotocol(t *testing.T) {
	srv := echoServer(t, "AMQPWSB10")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, address(srv), Options{Subprotocol: "mqtt", TLSConfig: trusting(srv), Proxy: noProxy})
	if err == nil {
		c.Close()
		t.Fatal("Dial succeeded, want an error")
	}
	if !errors.Is(err, ErrSubprotocol) {
		t.Errorf("Dial error = %v, want one wrapping ErrSubprotocol", err)
	}
}

func TestDialNeedsSubprotocol(t *testing.T) {
	_, err := Dial(t.Context(), "127.0.0.1:1", Options{})
	if err == nil {
		t.Fatal("Dial without a subprotocol succeeded")
	}
}

func TestDialUntrustedCertificate(t *testing.T) {
	srv := echoServer(t, "mqtt")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, address(srv), Options{Subprotocol: "mqtt", TLSConfig: &tls.Config{RootCAs: x509.NewCertPool()}, Proxy: noProxy})
	if err == nil {
		c.Close()
		t.Fatal("Dial succeeded against an untrusted certificate")
	}
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("Dial error = %v, want an x509.UnknownAuthorityError in the chain", err)
	}
}

// connectProxy is an HTTP proxy that serves CONNECT by tunnelling to the
// requested loopback address and records the targets it was asked for.
type connectProxy struct {
	mu      sync.Mutex
	targets []string
}

func (p *connectProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
		return
	}
	p.mu.Lock()
	p.targets = append(p.targets, r.Host)
	p.mu.Unlock()
	upstream, err := net.Dial("tcp", r.Host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	client, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		upstream.Close()
		return
	}
	if _, err := client.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		client.Close()
		upstream.Close()
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { // owned by this handler; ends when either side closes, joined below
		_, _ = io.Copy(upstream, buf)
		upstream.Close()
		client.Close()
	})
	_, _ = io.Copy(client, upstream)
	client.Close()
	upstream.Close()
	wg.Wait()
}

func (p *connectProxy) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.targets...)
}

func TestDialThroughProxy(t *testing.T) {
	srv := echoServer(t, "mqtt")
	proxy := &connectProxy{}
	proxySrv := httptest.NewServer(proxy)
	t.Cleanup(proxySrv.Close)
	proxyURL, err := url.Parse(proxySrv.URL)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, address(srv), Options{Subprotocol: "mqtt", TLSConfig: trusting(srv), Proxy: http.ProxyURL(proxyURL)})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(got) != "ping" {
		t.Errorf("echo = %q, want %q", got, "ping")
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if got, want := proxy.seen(), []string{address(srv)}; len(got) != 1 || got[0] != want[0] {
		t.Errorf("proxy saw CONNECT to %q, want %q", got, want)
	}
}

func TestDialCancelled(t *testing.T) {
	// A listener that accepts TCP and then says nothing: the TLS handshake
	// waits until ctx is cancelled.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	var wg sync.WaitGroup
	wg.Go(func() { // owned by the test; ends when the listener closes, joined below
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	})
	defer wg.Wait()
	defer ln.Close()

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	result := make(chan error, 1)
	wg.Go(func() { // owned by the test; joined through result and wg
		c, err := Dial(ctx, ln.Addr().String(), Options{Subprotocol: "mqtt", Proxy: noProxy})
		if c != nil {
			c.Close()
		}
		result <- err
	})
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	select {
	case c := <-accepted:
		defer c.Close()
	case <-deadline.C:
		t.Fatal("the dial never reached the listener")
	}
	cancel()
	select {
	case err := <-result:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Dial error = %v, want one wrapping context.Canceled", err)
		}
	case <-deadline.C:
		t.Fatal("Dial did not return after ctx was cancelled")
	}
}

// TestNetworkDial: the Network of a transport upgrades with the Config's
// user agent and the subprotocol, and asks Config.Proxy about the upgrade's
// https URL.
func TestNetworkDial(t *testing.T) {
	type upgrade struct{ UserAgent, Subprotocol string }
	upgrades := make(chan upgrade, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upgrades <- upgrade{r.Header.Get("User-Agent"), r.Header.Get("Sec-WebSocket-Protocol")}
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"mqtt"}})
		if err != nil {
			return
		}
		_, _, _ = c.Read(r.Context()) // until the client closes
		_ = c.CloseNow()
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)

	var proxied []string
	cfg := &transport.Config{
		UserAgent: "iotdevice-test/1",
		Proxy: func(target *url.URL) (*url.URL, error) {
			proxied = append(proxied, target.String())
			return nil, nil
		},
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := NewNetwork("websocket", "mqtt").Dial(ctx, address(srv), trusting(srv), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case got := <-upgrades:
		if diff := cmp.Diff(upgrade{"iotdevice-test/1", "mqtt"}, got); diff != "" {
			t.Errorf("upgrade request (-want +got):\n%s", diff)
		}
	default:
		t.Fatal("the server saw no upgrade")
	}
	if diff := cmp.Diff([]string{"https://" + address(srv) + Path}, proxied); diff != "" {
		t.Errorf("targets given to Config.Proxy (-want +got):\n%s", diff)
	}
}
