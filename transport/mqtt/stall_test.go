package mqtt

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/transport"
)

// TestRespondDoesNotHangOnAStalledConnection: when the hub stops reading,
// the answers stuck behind the full network buffer fail within about the
// ping timeout with transport.ErrConnLost, at either QoS; neither Respond
// nor Close stays blocked.
func TestRespondDoesNotHangOnAStalledConnection(t *testing.T) {
	for _, atMostOnce := range []bool{false, true} {
		t.Run(fmt.Sprintf("AnswerAtMostOnce=%v", atMostOnce), func(t *testing.T) {
			t.Parallel()
			testStalledConnection(t, &Options{PingTimeout: 500 * time.Millisecond, AnswerAtMostOnce: atMostOnce})
		})
	}
}

func testStalledConnection(t *testing.T, opts *Options) {
	stall := make(chan struct{})
	h := startHub(t, hubScript{stall: stall})
	t.Cleanup(func() { close(stall) }) // runs before the hub's Close
	cfg := testConfig(t, h.port(), newCountingCredential(t))
	cfg.KeepAlive = time.Second
	c, err := NewDialer(opts).Dial(dialCtx(t), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	receive(t, h.sessions, "session")

	// Enough 128 KB answers to fill the loopback buffers many times over.
	const answers = 128
	payload := []byte(`"` + strings.Repeat("x", 128*1024-2) + `"`)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // far beyond the bound checked below
	defer cancel()
	errs := make(chan error, answers)
	for i := range answers {
		go func() { // owned by the test: ends when Respond returns, collected below
			errs <- c.Respond(ctx, &transport.MethodRequest{Name: "m", RequestID: string(rune('a' + i))}, 200, payload)
		}()
	}
	bound := time.NewTimer(waitTimeout)
	defer bound.Stop()
	failed := 0
	for range answers {
		select {
		case err := <-errs:
			if err == nil {
				continue // went out before the buffers filled
			}
			failed++
			if !errors.Is(err, transport.ErrConnLost) {
				t.Errorf("Respond on a stalled connection = %v, want transport.ErrConnLost", err)
			}
		case <-bound.C:
			t.Fatalf("Respond still blocked %v after the hub stopped reading", waitTimeout)
		}
	}
	if failed == 0 {
		t.Fatal("every answer went out: the connection never stalled")
	}
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }() // owned by the test, joined below
	receive(t, closed, "Close")
}
