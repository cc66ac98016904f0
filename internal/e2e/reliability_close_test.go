package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/internal/faultproxy"
	"github.com/directmethods/iotdevice/internal/localhub"
)

// TestCloseWhileAnswerAwaitsConnection: a handler answers after the
// connection was lost and while the hub cannot be reached. The answer
// belongs to the lost connection and is dropped; Close must not wait for
// a connection (none will come): it returns within ShutdownTimeout plus a
// margin.
func TestCloseWhileAnswerAwaitsConnection(t *testing.T) {
	const shutdownTimeout = time.Second
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startHub(t, "dev-1")
			proxy := startProxy(t, hub, tr)
			entered, release := make(chan struct{}), make(chan struct{})
			answered := make(chan struct{})
			mux := device.NewMethodMux()
			mux.HandleFunc("late", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
				close(entered)
				<-release
				defer close(answered)
				return &device.MethodResponse{Status: 200}, nil
			})
			cs, err := hub.ConnectionString("dev-1")
			if err != nil {
				t.Fatal(err)
			}
			states := newStateLog()
			opts := deviceOptions(t, hub, tr)
			viaProxy(proxy, states.tweak)(opts)
			opts.ShutdownTimeout = shutdownTimeout
			client, err := device.NewClientFromConnectionString(cs, opts)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- client.Run(context.Background(), mux) }() // joined below
			waitSubscribed(t, hub, "dev-1")

			invoked := make(chan error, 1)
			go func() { // owned by the test: the hub ends the call at its response timeout or close, joined below
				_, err := hub.ServiceClient().Invoke(ctxTimeout(t, 30*time.Second), "dev-1", "", localhub.MethodCall{MethodName: "late", ResponseTimeoutInSeconds: 5})
				invoked <- err
			}()
			<-entered
			proxy.Refuse(0) // the hub cannot be reached any more
			proxy.Reset()
			states.waitFor(t, device.StateDisconnected, 1, 20*time.Second)
			close(release)
			<-answered // the answer is dropped with its connection

			begin := time.Now()
			client.Close()
			took := time.Since(begin)
			if err := <-done; !errors.Is(err, device.ErrClientClosed) {
				t.Errorf("Run = %v, want ErrClientClosed", err)
			}
			t.Logf("figure: close-with-undeliverable-answer transport=%s seconds=%.2f", tr, took.Seconds())
			if took > shutdownTimeout+2*time.Second {
				t.Errorf("Close took %v while an answer waited for a connection, want within ShutdownTimeout %v", took, shutdownTimeout)
			}
			<-invoked // 504 from the hub: the answer could not be delivered
		})
	}
}

// amqpCloseTimeout is how long the AMQP transport's Close waits for the
// hub to acknowledge the end of the connection (transport/amqp).
const amqpCloseTimeout = 5 * time.Second

// TestCloseWhileAnswerAwaitsAcknowledgement: the hub got an answer but its
// acknowledgement is lost (nothing flows from the hub any more), so the
// client still waits for it when Close is called. Close gives it a moment,
// then returns within ShutdownTimeout plus a margin.
func TestCloseWhileAnswerAwaitsAcknowledgement(t *testing.T) {
	const shutdownTimeout = time.Second
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startHub(t, "dev-1")
			proxy := startProxy(t, hub, tr)
			entered, release := make(chan struct{}), make(chan struct{})
			mux := device.NewMethodMux()
			mux.HandleFunc("late", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
				close(entered)
				<-release
				return &device.MethodResponse{Status: 200}, nil
			})
			cs, err := hub.ConnectionString("dev-1")
			if err != nil {
				t.Fatal(err)
			}
			opts := deviceOptions(t, hub, tr)
			viaProxy(proxy)(opts)
			opts.ShutdownTimeout = shutdownTimeout
			client, err := device.NewClientFromConnectionString(cs, opts)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- client.Run(context.Background(), mux) }() // joined below
			waitSubscribed(t, hub, "dev-1")

			invoked := make(chan error, 1)
			go func() { // owned by the test: ends with the call, joined below
				res, err := hub.ServiceClient().Invoke(ctxTimeout(t, 30*time.Second), "dev-1", "", localhub.MethodCall{MethodName: "late", ResponseTimeoutInSeconds: 20})
				if err == nil && res.Status != 200 {
					err = errors.New("not a 200")
				}
				invoked <- err
			}()
			<-entered
			proxy.BlackHole(faultproxy.ToClient) // acknowledgements never come back
			close(release)
			if err := <-invoked; err != nil { // the answer reached the hub
				t.Fatalf("invoke: %v", err)
			}

			begin := time.Now()
			client.Close()
			took := time.Since(begin)
			if err := <-done; !errors.Is(err, device.ErrClientClosed) {
				t.Errorf("Run = %v, want ErrClientClosed", err)
			}
			t.Logf("figure: close-with-unacknowledged-answer transport=%s seconds=%.2f", tr, took.Seconds())
			// The margin covers the client's last second for answers, and
			// the AMQP transport's graceful close, which waits up to 5 s
			// for a hub that no longer answers.
			margin := 3 * time.Second
			if isAMQP(tr) {
				margin += amqpCloseTimeout
			}
			if took > shutdownTimeout+margin {
				t.Errorf("Close took %v while an answer waited for its acknowledgement, want within ShutdownTimeout %v", took, shutdownTimeout)
			}
			proxy.Restore()
		})
	}
}
