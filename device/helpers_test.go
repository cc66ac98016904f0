package device_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport/transporttest"
)

var (
	testKey    = []byte("0123456789abcdef0123456789abcdef")
	testKeyB64 = base64.StdEncoding.EncodeToString(testKey)
)

const testHost = "hub.example.net"

// harness is a client on a fake transport, running in the background.
type harness struct {
	t      *testing.T
	fake   *transporttest.Fake
	client *device.Client
	mux    *device.MethodMux
	done   chan error // Run's result
	states *stateLog
}

// start builds a client with opts (Transport and OnStateChange are set
// here) and runs it with a fresh mux. The caller must call stop.
func start(t *testing.T, fopts *transporttest.FakeOptions, opts *device.ClientOptions, setup func(*device.MethodMux)) *harness {
	t.Helper()
	if opts == nil {
		opts = &device.ClientOptions{}
	}
	h := &harness{t: t, fake: transporttest.NewFake(fopts), mux: device.NewMethodMux(), done: make(chan error, 1), states: &stateLog{}}
	opts.Transport = h.fake
	opts.OnStateChange = h.states.add
	// The tests give the key's token lifetime in TokenLifetime, which only
	// connection strings read: it goes to the credential instead.
	cred, err := sas.NewKeyCredential(testKeyB64, "", opts.TokenLifetime)
	opts.TokenLifetime = 0
	if err != nil {
		t.Fatal(err)
	}
	h.client, err = device.NewClient(testHost, "dev-1", cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(h.mux)
	}
	go func() { h.done <- h.client.Run(context.Background(), h.mux) }() // owned by the harness: ends at stop
	return h
}

// stop closes the client and returns what Run returned.
func (h *harness) stop() error {
	h.t.Helper()
	if err := h.client.Close(); err != nil {
		h.t.Errorf("Close: %v", err)
	}
	return <-h.done
}

// invoke calls a method and marks the test failed on a transport error
// (Errorf, not Fatalf: it is called from goroutines too).
func (h *harness) invoke(ctx context.Context, method, payload string) (int, string) {
	h.t.Helper()
	var p []byte
	if payload != "" {
		p = []byte(payload)
	}
	status, resp, err := h.fake.Invoke(ctx, method, p)
	if err != nil {
		h.t.Errorf("Invoke(%s): %v", method, err)
	}
	return status, string(resp)
}

// stateLog records state changes.
type stateLog struct {
	mu     sync.Mutex
	states []device.State
	errs   []error
}

func (s *stateLog) add(st device.State, err error) {
	s.mu.Lock()
	s.states = append(s.states, st)
	s.errs = append(s.errs, err)
	s.mu.Unlock()
}

func (s *stateLog) get() []device.State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]device.State(nil), s.states...)
}

// syncBuffer is a log sink safe for concurrent writes.
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

func debugLogger(w *syncBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}
