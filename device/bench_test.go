package device_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport"
	"github.com/directmethods/iotdevice/transport/transporttest"
)

// BenchmarkDispatchEcho measures one method call through the client on the
// in-memory transport: receive, handler, validation, answer. The
// fake's own bookkeeping is included.
func BenchmarkDispatchEcho(b *testing.B) {
	for _, size := range []int{100, 64 * 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			payload := []byte(`"` + strings.Repeat("x", size-2) + `"`)
			fake := transporttest.NewFake(nil)
			cred, _ := sas.NewKeyCredential(testKeyB64, "", 0)
			c, err := device.NewClient(testHost, "dev-1", cred, &device.ClientOptions{Transport: fake})
			if err != nil {
				b.Fatal(err)
			}
			mux := device.NewMethodMux()
			echoMux(mux)
			done := make(chan error, 1)
			go func() { done <- c.Run(context.Background(), mux) }() // owned by the benchmark: ends at Close
			defer func() { c.Close(); <-done }()
			ctx := context.Background()
			if err := fake.WaitConnected(ctx); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				status, body, err := fake.Invoke(ctx, "echo", payload)
				if err != nil || status != 200 || !bytes.Equal(body, payload) {
					b.Fatalf("%d %.40s %v", status, body, err)
				}
			}
		})
	}
}

// BenchmarkDispatchSDK measures the client's own share of a method call:
// its transport hands out prepared requests and takes answers without
// allocating, so allocs/op counts only the client and the echo handler
// (which allocates its *MethodResponse).
func BenchmarkDispatchSDK(b *testing.B) {
	for _, size := range []int{100, 64 * 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			payload := []byte(`"` + strings.Repeat("x", size-2) + `"`)
			tr := newBenchTransport(payload)
			cred, _ := sas.NewKeyCredential(testKeyB64, "", 0)
			c, err := device.NewClient(testHost, "dev-1", cred, &device.ClientOptions{Transport: tr})
			if err != nil {
				b.Fatal(err)
			}
			mux := device.NewMethodMux()
			echoMux(mux)
			done := make(chan error, 1)
			go func() { done <- c.Run(context.Background(), mux) }() // owned by the benchmark: ends at Close
			defer func() { c.Close(); <-done }()
			<-tr.connected
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				tr.invoke(b)
			}
		})
	}
}

// BenchmarkDispatchFloor is BenchmarkDispatchSDK's floor: the same
// transport answered by a bare loop that receives and echoes on one
// goroutine, with none of the client in the path. BenchmarkDispatchSDK
// minus this is the client's cost per call.
func BenchmarkDispatchFloor(b *testing.B) {
	for _, size := range []int{100, 64 * 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			payload := []byte(`"` + strings.Repeat("x", size-2) + `"`)
			tr := newBenchTransport(payload)
			conn, err := tr.Dial(context.Background(), nil)
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan struct{})
			go func() { // owned by the benchmark: ends when conn is closed
				defer close(done)
				ctx := context.Background()
				for {
					req, err := conn.Receive(ctx)
					if err != nil {
						return
					}
					conn.Respond(ctx, req, 200, req.Payload)
				}
			}()
			defer func() { conn.Close(); <-done }()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				tr.invoke(b)
			}
		})
	}
}

// benchTransport is a transport.Dialer and transport.Conn for one
// connection that allocates nothing per call: requests come from a ring
// prepared in advance, answers are checked in place.
type benchTransport struct {
	payload   []byte
	ring      [8]transport.MethodRequest // a request is reused 8 calls later, long after its answer
	next      int
	requests  chan *transport.MethodRequest
	answers   chan answerCheck
	connected chan struct{} // closed by the first Dial
	closed    chan struct{} // closed by Close
}

// answerCheck is what Respond saw.
type answerCheck struct {
	status int
	echoed bool
}

func newBenchTransport(payload []byte) *benchTransport {
	t := &benchTransport{
		payload:   payload,
		requests:  make(chan *transport.MethodRequest),
		answers:   make(chan answerCheck, 1),
		connected: make(chan struct{}),
		closed:    make(chan struct{}),
	}
	for i := range t.ring {
		t.ring[i] = transport.MethodRequest{Name: "echo", RequestID: fmt.Sprint(i), Payload: payload}
	}
	return t
}

// invoke sends one request and waits for its answer.
func (t *benchTransport) invoke(b *testing.B) {
	req := &t.ring[t.next]
	t.next = (t.next + 1) % len(t.ring)
	t.requests <- req
	if a := <-t.answers; a.status != 200 || !a.echoed {
		b.Fatalf("answer: status %d, echoed %v", a.status, a.echoed)
	}
}

func (t *benchTransport) Dial(ctx context.Context, cfg *transport.Config) (transport.Conn, error) {
	select {
	case <-t.connected:
		return nil, fmt.Errorf("bench transport: second dial: %w", transport.ErrConnLost)
	default:
		close(t.connected)
		return t, nil
	}
}

func (t *benchTransport) Receive(ctx context.Context) (*transport.MethodRequest, error) {
	select {
	case req := <-t.requests:
		return req, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.closed:
		return nil, net.ErrClosed
	}
}

func (t *benchTransport) Respond(ctx context.Context, req *transport.MethodRequest, status int, payload []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t.answers <- answerCheck{status: status, echoed: bytes.Equal(payload, t.payload)}
	return nil
}

func (t *benchTransport) Close() error {
	select {
	case <-t.closed:
	default:
		close(t.closed)
	}
	return nil
}
