package localhub

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// stalledDevice is a raw MQTT device with a 4 KB socket receive buffer
// that subscribes to method requests, then never reads again while it
// keeps sending PINGREQ.
type stalledDevice struct {
	conn       *tls.Conn
	stop       chan struct{}
	pinger     sync.WaitGroup
	pingFailed chan struct{} // closed when a PINGREQ cannot be written
	pingErr    error         // why, set before pingFailed is closed
}

func dialStalledDevice(t *testing.T, h *Hub, identity string) *stalledDevice {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", h.MQTTAddr())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { raw.Close() })
	if err := raw.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatalf("SetReadBuffer: %v", err)
	}
	conn := tls.Client(raw, &tls.Config{RootCAs: h.CertPool(), ServerName: h.HostName(), MinVersion: tls.VersionTLS12})
	if err := conn.HandshakeContext(ctx); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	cs, err := h.ConnectionString(identity)
	if err != nil {
		t.Fatal(err)
	}
	c := &rawConn{conn: conn, r: bufio.NewReader(conn)}
	c.write(t, connectPacket(h.HostName(), identity, deviceToken(t, cs, time.Now().Add(time.Hour)), true))
	if code := connackCode(t, c); code != connackAccepted {
		t.Fatalf("CONNACK = %d", code)
	}
	subscribe(t, c, 0)
	_ = conn.SetDeadline(time.Time{})

	dev := &stalledDevice{conn: conn, stop: make(chan struct{}), pingFailed: make(chan struct{})}
	dev.pinger.Go(func() { // owned by the device: ends at stop or on a write error; joined in stopPinging
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		var ping bytes.Buffer
		_ = packets.NewControlPacket(packets.Pingreq).Write(&ping)
		for {
			select {
			case <-dev.stop:
				return
			case <-tick.C:
			}
			_ = conn.SetWriteDeadline(time.Now().Add(waitTimeout))
			if _, err := conn.Write(ping.Bytes()); err != nil {
				dev.pingErr = err
				close(dev.pingFailed)
				return
			}
		}
	})
	t.Cleanup(dev.stopPinging)
	return dev
}

func (d *stalledDevice) stopPinging() {
	select {
	case <-d.stop:
	default:
		close(d.stop)
	}
	d.pinger.Wait()
}

// waitDropped waits up to timeout for the hub to close the connection,
// which the device notices when its next PINGREQ fails. (Reading instead
// would let the hub's writes make progress again.)
func (d *stalledDevice) waitDropped(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-d.pingFailed:
		var ne net.Error
		if errors.As(d.pingErr, &ne) && ne.Timeout() {
			t.Fatalf("PINGREQ timed out instead of failing on a closed connection: %v", d.pingErr)
		}
	case <-time.After(timeout):
		t.Fatalf("the hub did not drop the stalled device within %v", timeout)
	}
}

// callResult is one invocation's outcome.
type callResult struct {
	code     int // the error code; 200 for a method result
	duration time.Duration
	err      error
}

// invokeConcurrently makes n concurrent calls to identity and
// returns their outcomes.
func invokeConcurrently(t *testing.T, h *Hub, identity string, n int, call MethodCall) []callResult {
	t.Helper()
	results := make([]callResult, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { // owned by the test: ends when the call returns; joined below
			ctx, cancel := context.WithTimeout(t.Context(), 2*waitTimeout)
			defer cancel()
			start := time.Now()
			_, err := h.ServiceClient().Invoke(ctx, identity, "", call)
			r := callResult{code: 200, duration: time.Since(start), err: err}
			var se *ServiceError
			switch {
			case errors.As(err, &se):
				r.code = se.ErrorCode
			case err != nil:
				r.code = -1
			}
			results[i] = r
		})
	}
	wg.Wait()
	return results
}

// summarize counts outcomes by code, for failure messages.
func summarize(results []callResult) string {
	counts := map[int]int{}
	var errs []string
	for _, r := range results {
		counts[r.code]++
		if r.code == -1 && len(errs) < 3 {
			errs = append(errs, r.err.Error())
		}
	}
	var parts []string
	for code, n := range counts {
		parts = append(parts, fmt.Sprintf("%d×%d", n, code))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ") + " " + strings.Join(errs, "; ")
}

// TestDeviceThatNeverReads floods a device that stopped reading with 150
// concurrent calls of 128 KB: every call ends by its response timeout with
// 504101, never held past it while the hub hands it over, and the hub then
// drops the device, whose writes have stalled for MQTTWriteTimeout, so a
// later call finds the device offline at once.
//
// Time windows come from calls of the same size to an offline device,
// which the hub answers once it has read them: 150 on a hub of their own
// before, and 30 more made alongside the flood, so they see the load it
// sees. Twice the slowest of them is the margin over the response timeout.
// The write timeout is the response timeout plus three times the slowest
// before, so that every call has reached the hub before the device is
// dropped (a call that comes after finds the device offline, which is
// right, but not what this test is about).
func TestDeviceThatNeverReads(t *testing.T) {
	const (
		calls           = 150
		responseTimeout = 5 * time.Second
	)
	payload := json.RawMessage(`"` + strings.Repeat("x", maxMethodPayload-2) + `"`)
	call := MethodCall{MethodName: "flood", Payload: payload, ResponseTimeoutInSeconds: int(responseTimeout / time.Second)}
	slowestOffline := func(results []callResult) time.Duration {
		t.Helper()
		var slowest time.Duration
		for _, r := range results {
			if r.code != 404103 {
				t.Fatalf("call to the offline device: %v, want 404103", r.err)
			}
			slowest = max(slowest, r.duration)
		}
		return slowest
	}
	baselineHub := startHub(t, Options{Devices: []string{"offline"}})
	before := slowestOffline(invokeConcurrently(t, baselineHub, "offline", calls, call))
	baselineHub.Close()
	writeTimeout := responseTimeout + 3*before

	h := startHub(t, Options{Devices: []string{"stalled", "offline"}, MQTTWriteTimeout: writeTimeout})
	d := dialStalledDevice(t, h, "stalled")
	var results, alongside []callResult
	var wg sync.WaitGroup
	wg.Go(func() { results = invokeConcurrently(t, h, "stalled", calls, call) })     // owned by the test: joined below
	wg.Go(func() { alongside = invokeConcurrently(t, h, "offline", calls/5, call) }) // owned by the test: joined below
	wg.Wait()
	margin := 2 * max(before, slowestOffline(alongside))
	var slowest time.Duration
	bad := 0
	for _, r := range results {
		slowest = max(slowest, r.duration)
		if r.code != 504101 || r.duration < responseTimeout || r.duration > responseTimeout+margin {
			bad++
		}
	}
	t.Logf("slowest call to an offline device %v before; margin %v, write timeout %v; slowest call to the stalled device %v",
		before, margin, writeTimeout, slowest)
	if bad > 0 {
		t.Errorf("%d of %d calls did not end with 504101 within %v + %v (slowest %v): %s",
			bad, calls, responseTimeout, margin, slowest, summarize(results))
	}

	d.waitDropped(t, writeTimeout+margin)
	start := time.Now()
	_, err := h.ServiceClient().Invoke(t.Context(), "stalled", "", call)
	if d := time.Since(start); !isCode(err, 404103) || d > margin {
		t.Errorf("later call = %v after %v, want 404103 within %v", err, d, margin)
	}
}

// pipeSession runs the writer of a session over a net.Pipe whose other
// end the test holds, and ends both at cleanup.
func pipeSession(t *testing.T, h *Hub) (*mqttSession, net.Conn) {
	t.Helper()
	server, client := net.Pipe()
	s := newMQTTSession(h, server, "mqtt", nil)
	s.identity = "dev"
	s.methodsOn.Store(true)
	var writer sync.WaitGroup
	writer.Go(s.writeLoop) // owned by the test: ends when the session closes; joined at cleanup
	t.Cleanup(func() {
		s.close()
		client.Close()
		writer.Wait()
	})
	return s, client
}

func requestPacket(rid string, payload []byte) *packets.PublishPacket {
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.TopicName = methodRequestTopic("m", rid)
	p.Payload = payload
	return p
}

// TestHandOverToStalledSession hands requests to a session whose peer
// never reads: with the writer stuck and the queue full, a hand-over gives
// up when its ctx ends, also while another holds the queue's lock; one
// still waiting when the session ends is lost with it and reported
// delivered; and an ended session refuses requests.
func TestHandOverToStalledSession(t *testing.T) {
	t.Parallel()
	h := startHub(t, Options{MQTTWriteTimeout: time.Minute})
	s, _ := pipeSession(t, h)
	// One request for the writer, stuck on the pipe, and a full queue.
	// Each is larger than the writer's buffer, so it holds no more.
	payload := make([]byte, 8*1024)
	for i := range outQueueLen + 1 {
		if err := s.handOver(t.Context(), outbound{packet: requestPacket(fmt.Sprint(i), payload)}); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	const wait = 50 * time.Millisecond
	giveUp := func(t *testing.T) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), wait)
		defer cancel()
		result := make(chan error, 1)
		go func() { // owned by the test: ends when handOver returns
			result <- s.handOver(ctx, outbound{packet: requestPacket("late", nil)})
		}()
		select {
		case err := <-result:
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("handOver = %v, want %v", err, context.DeadlineExceeded)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("handOver still waiting %v after its ctx ended", waitTimeout)
		}
	}
	t.Run("queue full", giveUp)
	t.Run("lock held", func(t *testing.T) {
		s.methodsLock <- struct{}{} // as a hand-over stuck on the full queue holds it
		defer func() { <-s.methodsLock }()
		giveUp(t)
	})
	t.Run("session ends while waiting", func(t *testing.T) {
		result := make(chan error, 1)
		go func() { // owned by the test: ends when the session closes
			result <- s.handOver(context.Background(), outbound{packet: requestPacket("lost", nil)})
		}()
		s.close()
		select {
		case err := <-result:
			if err != nil {
				t.Errorf("handOver = %v, want nil: the request is lost with the connection", err)
			}
		case <-time.After(waitTimeout):
			t.Fatal("handOver still waiting after the session ended")
		}
	})
	t.Run("session ended", func(t *testing.T) {
		if _, err := s.deliver(t.Context(), methodRequest{name: "m"}); !errors.Is(err, net.ErrClosed) {
			t.Errorf("deliver = %v, want %v", err, net.ErrClosed)
		}
	})
}

// TestWriteTimeout checks the writer's deadline: a peer that reads
// nothing is dropped once a write has made no progress for the write
// timeout, and a peer that reads slowly but steadily (16 KiB, one write, in
// a quarter of the timeout; the 128 KB request in twice the timeout) is
// not.
func TestWriteTimeout(t *testing.T) {
	t.Parallel()
	const writeTimeout = 2 * time.Second
	h := startHub(t, Options{MQTTWriteTimeout: writeTimeout})
	payload := make([]byte, maxMethodPayload)

	t.Run("peer reads nothing", func(t *testing.T) {
		t.Parallel()
		s, _ := pipeSession(t, h)
		start := time.Now()
		if err := s.handOver(t.Context(), outbound{packet: requestPacket("1", payload)}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-s.done:
		case <-time.After(waitTimeout):
			t.Fatalf("session not dropped %v after the write timeout of %v", waitTimeout, writeTimeout)
		}
		if d := time.Since(start); d < writeTimeout {
			t.Errorf("dropped %v after the request, before the write timeout of %v", d, writeTimeout)
		}
	})
	t.Run("peer reads slowly", func(t *testing.T) {
		t.Parallel()
		s, client := pipeSession(t, h)
		var packet bytes.Buffer
		_ = requestPacket("1", payload).Write(&packet)
		want := packet.Len()
		if err := s.handOver(t.Context(), outbound{packet: requestPacket("1", payload)}); err != nil {
			t.Fatal(err)
		}
		tick := time.NewTicker(writeTimeout / 16) // 4 KiB a tick
		defer tick.Stop()
		buf := make([]byte, 4096)
		got := 0
		for got < want {
			<-tick.C
			_ = client.SetReadDeadline(time.Now().Add(waitTimeout))
			n, err := client.Read(buf[:min(len(buf), want-got)])
			got += n
			if err != nil {
				t.Fatalf("read after %d of %d bytes: %v", got, want, err)
			}
		}
		select {
		case <-s.done:
			t.Error("the hub dropped a peer that kept reading")
		default:
		}
	})
}
