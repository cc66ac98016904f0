package localhub

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/directmethods/iotdevice/internal/amqpwire"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// ridOf returns the $rid of a request topic.
func ridOf(t testing.TB, topic string) string {
	t.Helper()
	_, rid, ok := parseRequestTopic(topic)
	if !ok {
		t.Fatalf("request topic %q does not parse", topic)
	}
	return rid
}

// callOutcome is the outcome of one invocation run in the background.
type callOutcome struct {
	res *MethodResult
	err error
}

// invokeAsync starts an invocation and returns where its outcome arrives.
func invokeAsync(t *testing.T, wg *sync.WaitGroup, h *Hub, identity string, call MethodCall) <-chan callOutcome {
	done := make(chan callOutcome, 1)
	wg.Go(func() { // owned by the test: ends with the invocation; the test joins wg
		res, err := invoke(t, h, identity, call)
		done <- callOutcome{res, err}
	})
	return done
}

// awaitCall waits for an invocation started by invokeAsync.
func awaitCall(t *testing.T, done <-chan callOutcome, within time.Duration) callOutcome {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(within):
		t.Fatalf("the call did not end within %v", within)
		return callOutcome{}
	}
}

// TestMQTTRequestIDsPerConnection checks IoT Hub's numbering of MQTT
// requests: 1, 2, … in hexadecimal on each connection, starting again on
// the next, and an answer matched only on its own connection.
func TestMQTTRequestIDsPerConnection(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev-1"}})
	var wg sync.WaitGroup
	defer wg.Wait()

	first := connectRaw(t, h, "dev-1")
	subscribe(t, first, 1)
	// Call A reaches the device, which never answers it on this connection.
	callA := invokeAsync(t, &wg, h, "dev-1", MethodCall{MethodName: "a", ResponseTimeoutInSeconds: minResponseTimeout})
	topic, _ := readRequest(t, first)
	if rid := ridOf(t, topic); rid != "1" {
		t.Fatalf("first request on a connection has $rid=%s, want 1", rid)
	}
	// 16 more calls, answered: the 17th request of the connection is 0x11.
	for i := 2; i <= 17; i++ {
		done := invokeAsync(t, &wg, h, "dev-1", MethodCall{MethodName: "n"})
		topic, _ := readRequest(t, first)
		rid := ridOf(t, topic)
		if want := fmt.Sprintf("%x", i); rid != want {
			t.Fatalf("request %d has $rid=%s, want %s", i, rid, want)
		}
		publishResponse(t, first, 200, rid, `"ok"`)
		if r := awaitCall(t, done, waitTimeout); r.err != nil {
			t.Fatalf("call %d: %v", i, r.err)
		}
	}
	first.conn.Close()

	second := connectRaw(t, h, "dev-1")
	subscribe(t, second, 1)
	// A's answer on the new connection names no request of it: ignored.
	publishResponse(t, second, 200, "1", `"stale answer to A"`)
	// Call B is request 1 of the new connection.
	callB := invokeAsync(t, &wg, h, "dev-1", MethodCall{MethodName: "b"})
	topic, _ = readRequest(t, second)
	if rid := ridOf(t, topic); rid != "1" {
		t.Fatalf("first request on the new connection has $rid=%s, want 1", rid)
	}
	publishResponse(t, second, 200, "1", `"answer to B"`)
	if r := awaitCall(t, callB, waitTimeout); r.err != nil || string(r.res.Payload) != `"answer to B"` {
		t.Fatalf("call B = %+v, %v; want its own answer", r.res, r.err)
	}
	// A never gets an answer: it runs out its response timeout.
	r := awaitCall(t, callA, minResponseTimeout*time.Second+waitTimeout)
	wantServiceError(t, r.err, 504101)
}

// TestInvalidResponseEndsCall checks that a device answer the hub cannot
// accept ends its call at once with an error, over MQTT and AMQP, instead
// of leaving the caller to its response timeout.
func TestInvalidResponseEndsCall(t *testing.T) {
	tooLarge := strings.Repeat("a", maxMethodPayload+1)
	tests := []struct {
		name   string
		answer func(t *testing.T, h *Hub, ready chan<- struct{})
	}{
		{"mqtt status not an integer", func(t *testing.T, h *Hub, ready chan<- struct{}) {
			c := connectRaw(t, h, "dev-1")
			subscribe(t, c, 1)
			close(ready)
			topic, _ := readRequest(t, c)
			p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
			p.TopicName = "$iothub/methods/res/ok/?$rid=" + ridOf(t, topic)
			c.write(t, p)
		}},
		{"mqtt payload over 128 KB", func(t *testing.T, h *Hub, ready chan<- struct{}) {
			c := connectRaw(t, h, "dev-1")
			subscribe(t, c, 1)
			close(ready)
			topic, _ := readRequest(t, c)
			p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
			p.TopicName = "$iothub/methods/res/200/?$rid=" + ridOf(t, topic)
			p.Payload = []byte(`"` + tooLarge + `"`)
			c.write(t, p)
		}},
		{"amqp without IoThub-status", amqpAnswer(&goamqp.Message{})},
		{"amqp status not an integer", amqpAnswer(&goamqp.Message{ApplicationProperties: map[string]any{amqpwire.StatusProperty: "200"}})},
		{"amqp payload over 128 KB", amqpAnswer(&goamqp.Message{ApplicationProperties: map[string]any{amqpwire.StatusProperty: int32(200)}, Data: [][]byte{[]byte(`"` + tooLarge + `"`)}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := startHub(t, Options{Devices: []string{"dev-1"}})
			var wg sync.WaitGroup
			defer wg.Wait()
			ready := make(chan struct{})
			wg.Go(func() { tt.answer(t, h, ready) }) // owned by the test: the device's side; joined above
			select {
			case <-ready:
			case <-time.After(waitTimeout):
				t.Fatal("device not ready")
			}
			if err := h.WaitSubscribed(t.Context(), "dev-1"); err != nil {
				t.Fatal(err)
			}
			// The response timeout is far longer than the test waits: only
			// an early end passes.
			done := invokeAsync(t, &wg, h, "dev-1", MethodCall{MethodName: "m", ResponseTimeoutInSeconds: maxResponseTimeout})
			r := awaitCall(t, done, waitTimeout)
			wantServiceError(t, r.err, 500001)
		})
	}
}

// amqpAnswer returns a device that answers its first request with resp,
// correlated to the request.
func amqpAnswer(resp *goamqp.Message) func(t *testing.T, h *Hub, ready chan<- struct{}) {
	return func(t *testing.T, h *Hub, ready chan<- struct{}) {
		c := mustDialAMQP(t, h, false)
		c.authenticate("dev-1", time.Now().Add(time.Hour))
		m := c.mustAttach("dev-1")
		close(ready)
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		msg, err := m.requests.Receive(ctx, nil)
		if err != nil {
			t.Errorf("receive request: %v", err)
			return
		}
		_ = m.requests.AcceptMessage(ctx, msg)
		resp.Properties = &goamqp.MessageProperties{CorrelationID: msg.Properties.CorrelationID}
		_ = m.responses.Send(ctx, resp, nil) // the hub rejects it
	}
}
