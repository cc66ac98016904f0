package mqtt

import (
	"fmt"
	"testing"

	"github.com/directmethods/iotdevice/internal/mqttwire"
	"github.com/google/go-cmp/cmp"
)

// TestQuiesceThenCloseLosesNoRequest: requests the hub sent before the
// UNSUBACK all come out of Receive, even for a receiver that is already
// waiting when Close starts, as the client's goroutines are during a
// reconnection to renew its token.
func TestQuiesceThenCloseLosesNoRequest(t *testing.T) {
	const requests = 200
	for round := range 5 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			c, s := dialed(t, nil)
			got := make(chan []string, 1)
			go func() { // owned by the test: ends when Receive fails after Close, joined below
				var rids []string
				for {
					req, err := c.Receive(dialCtx(t))
					if err != nil {
						got <- rids
						return
					}
					rids = append(rids, req.RequestID)
				}
			}()
			var want []string
			for i := range requests {
				rid := fmt.Sprint(i)
				want = append(want, rid)
				s.request(t, "$iothub/methods/POST/m/?$rid="+rid, []byte(`{}`))
			}
			if err := c.(*conn).Quiesce(dialCtx(t)); err != nil {
				t.Fatalf("Quiesce: %v", err)
			}
			u := receive(t, s.unsubscribes, "UNSUBSCRIBE")
			if diff := cmp.Diff([]string{mqttwire.MethodsFilter}, u.Topics); diff != "" {
				t.Errorf("unsubscribed topics (-want +got):\n%s", diff)
			}
			c.Close()
			if diff := cmp.Diff(want, receive(t, got, "the receiver to end")); diff != "" {
				t.Errorf("requests received (-want +got):\n%s", diff)
			}
		})
	}
}
