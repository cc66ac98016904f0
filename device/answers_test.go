package device_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/internal/testwait"
	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport"
	"github.com/directmethods/iotdevice/transport/transporttest"
)

// stuckConn is a connection whose answers never find room to go out, as
// on an AMQP link without credit: Respond waits for its context.
type stuckConn struct {
	transport.Conn
	deadlines chan<- time.Time
}

func (c stuckConn) Respond(ctx context.Context, _ *transport.MethodRequest, _ int, _ []byte) error {
	deadline, _ := ctx.Deadline()
	c.deadlines <- deadline
	<-ctx.Done()
	return ctx.Err()
}

// runWith runs a client with opts and h in the background; Run's result
// arrives on the channel once the client is closed.
func runWith(t *testing.T, opts *device.ClientOptions, h device.MethodHandler) (*device.Client, <-chan error) {
	t.Helper()
	cred, err := sas.NewKeyCredential(testKeyB64, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	client, err := device.NewClient(testHost, "dev-1", cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	run := make(chan error, 1)
	go func() { run <- client.Run(context.Background(), h) }() // owned by the test: ends with Close
	return client, run
}

// TestStaleAnswersAreNotSent: an answer that cannot go out waits at most
// until its handler's deadline plus a second, then is dropped and counted
// lost, and its handler's slot serves the next call.
func TestStaleAnswersAreNotSent(t *testing.T) {
	const methodTimeout = 300 * time.Millisecond
	fake := transporttest.NewFake(nil)
	deadlines := make(chan time.Time, 2)
	dialer := transport.DialerFunc(func(ctx context.Context, cfg *transport.Config) (transport.Conn, error) {
		conn, err := fake.Dial(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return stuckConn{conn, deadlines}, nil
	})
	started := make(chan time.Time, 2)
	mux := device.NewMethodMux()
	mux.HandleFunc("m", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
		started <- time.Now()
		return nil, nil
	})
	client, run := runWith(t, &device.ClientOptions{Transport: dialer, MethodTimeout: methodTimeout, MaxConcurrentMethods: 1}, mux)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	invoked := time.Now()
	for range 2 {
		go func() { _, _, _ = fake.Invoke(ctx, "m", nil) }() // owned by the test: ends with ctx, cancelled at the end
	}
	for i := range 2 {
		handlerStarted := waitFor(t, started, "a handler")
		deadline := waitFor(t, deadlines, "Respond")
		if earliest, latest := invoked.Add(methodTimeout+time.Second), handlerStarted.Add(methodTimeout+time.Second); deadline.Before(earliest) || deadline.After(latest) {
			t.Errorf("answer %d may go out until %v after the call, want between %v and %v", i,
				deadline.Sub(invoked), earliest.Sub(invoked), latest.Sub(invoked))
		}
	}
	client.Close()
	if err := <-run; !errors.Is(err, device.ErrClientClosed) {
		t.Errorf("Run = %v", err)
	}
	if got := client.Stats().AnswersLost; got != 2 {
		t.Errorf("AnswersLost = %d, want 2", got)
	}
}

// TestUnconfirmedAnswersAreCounted: an answer the transport reports
// through Config.AnswerLost counts in Stats.AnswersLost.
func TestUnconfirmedAnswersAreCounted(t *testing.T) {
	fake := transporttest.NewFake(nil)
	configs := make(chan *transport.Config, 1)
	dialer := transport.DialerFunc(func(ctx context.Context, cfg *transport.Config) (transport.Conn, error) {
		configs <- cfg
		return fake.Dial(ctx, cfg)
	})
	client, run := runWith(t, &device.ClientOptions{Transport: dialer}, device.NewMethodMux())
	defer func() { client.Close(); <-run }()
	cfg := waitFor(t, configs, "a dial")
	if cfg.AnswerLost == nil {
		t.Fatal("the client set no AnswerLost")
	}
	cfg.AnswerLost(&transport.MethodRequest{Name: "m", RequestID: "1"}, 200, errors.New("released"))
	if got := client.Stats().AnswersLost; got != 1 {
		t.Errorf("AnswersLost = %d, want 1", got)
	}
}

// waitFor waits for a value from ch (see testwait.Receive).
func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	return testwait.Receive(t, ch, what)
}
