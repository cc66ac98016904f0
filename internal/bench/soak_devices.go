package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/internal/faultproxy"
	"github.com/directmethods/iotdevice/internal/localhub"
	"github.com/directmethods/iotdevice/internal/slowpath"
)

// soakHub is a local hub that can be restarted on the same ports with the
// same state directory, so that the devices' identities, keys and trusted
// CA stay valid. Its methods are safe for concurrent use.
type soakHub struct {
	mu   sync.Mutex
	opts localhub.Options // its ports are fixed once the first hub is up
	hub  *localhub.Hub    // nil while the hub is down
}

// startSoakHub starts a hub keeping its state in dir, with identities
// registered.
func startSoakHub(ctx context.Context, dir string, identities []string, log *slog.Logger) (*soakHub, error) {
	opts := localhub.Options{Dir: dir, Devices: identities, Logger: log}
	hub, err := localhub.Start(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("bench: soak: start hub: %w", err)
	}
	opts.Devices = nil // registered in dir now
	opts.MQTTPort, opts.AMQPPort, opts.HTTPSPort = hub.MQTTPort(), hub.AMQPPort(), hub.HTTPSPort()
	return &soakHub{opts: opts, hub: hub}, nil
}

// restartAttempts and restartRetry bound the attempts to start the hub
// again: another program may take one of its ports for a moment while it
// is down.
const (
	restartAttempts = 20
	restartRetry    = 500 * time.Millisecond
)

// restart stops the hub, leaves it down for down and starts it again on
// the same ports. ctx bounds the wait and the start.
func (h *soakHub) restart(ctx context.Context, down time.Duration) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hub != nil {
		h.hub.Close()
		h.hub = nil
	}
	pause(ctx, nil, down)
	var err error
	for range restartAttempts {
		if h.hub, err = localhub.Start(ctx, h.opts); err == nil {
			return nil
		}
		var le *localhub.ListenError
		if !errors.As(err, &le) || !pause(ctx, nil, restartRetry) {
			break
		}
	}
	return fmt.Errorf("bench: soak: restart hub: %w", err)
}

// addr returns the hub's address for transport name: its HTTPS port for
// WebSockets.
func (h *soakHub) addr(name string) string {
	port := h.opts.HTTPSPort
	switch name {
	case "mqtt":
		port = h.opts.MQTTPort
	case "amqp":
		port = h.opts.AMQPPort
	}
	return net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
}

// Close stops the hub.
func (h *soakHub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hub != nil {
		h.hub.Close()
		h.hub = nil
	}
}

// soakDevice is one SDK client behind a fault proxy of its own.
type soakDevice struct {
	id, transport string
	proxy         *faultproxy.Proxy
	client        *device.Client
	done          chan error    // Run's result, buffered 1
	connected     chan struct{} // closed at the first StateConnected
	connects      atomic.Int64  // StateConnected events

	// Set by the device's probe, read once it has been joined.
	recovered bool
	recovery  time.Duration // from the end of the faults to its first right answer
}

// sendBuffer is the socket send buffer soak devices dial with: what a
// small device on a slow path might have (see package slowpath).
const sendBuffer = 16 << 10

// startDevice starts the client of identity connectionString over
// transport name behind a new fault proxy in front of the hub. It does not
// wait for the client to connect.
func (s *soak) startDevice(id, name, connectionString string, roots *x509.CertPool) (*soakDevice, error) {
	dialer, err := slowpath.Dialer(name, sendBuffer)
	if err != nil {
		return nil, err
	}
	proxy, err := faultproxy.New(s.hub.addr(name))
	if err != nil {
		return nil, fmt.Errorf("bench: soak: %w", err)
	}
	d := &soakDevice{id: id, transport: name, proxy: proxy, done: make(chan error, 1), connected: make(chan struct{})}
	first := true // only OnStateChange's goroutine uses it
	d.client, err = device.NewClientFromConnectionString(connectionString, &device.ClientOptions{
		Transport:   dialer,
		Port:        proxy.Port(),
		TLSConfig:   &tls.Config{RootCAs: roots},
		KeepAlive:   s.cfg.KeepAlive,
		DialTimeout: max(10*time.Second, 2*s.cfg.KeepAlive),
		Backoff:     device.ExponentialBackoff(s.cfg.KeepAlive/50, s.cfg.KeepAlive),
		Logger:      s.partsLog.With("transport", name),
		OnStateChange: func(state device.State, _ error) {
			if state != device.StateConnected {
				return
			}
			d.connects.Add(1)
			if first {
				first = false
				close(d.connected)
			}
		},
	})
	if err != nil {
		proxy.Close()
		return nil, fmt.Errorf("bench: soak: %w", err)
	}
	handler := s.cfg.handler
	if handler == nil {
		handler = soakHandler()
	}
	go func() { d.done <- d.client.Run(context.Background(), handler) }() // owned by d: ends on close, joined by close
	return d, nil
}

// close stops the client, waits for Run to return and closes the proxy.
// It returns Run's error if Run ended before it was asked to.
func (d *soakDevice) close() error {
	var early error
	select {
	case early = <-d.done:
	default:
		d.client.Close()
		if err := <-d.done; !errors.Is(err, device.ErrClientClosed) {
			early = err
		}
	}
	d.proxy.Close()
	if early != nil {
		return fmt.Errorf("%s: Run returned %w", d.id, early)
	}
	return nil
}
