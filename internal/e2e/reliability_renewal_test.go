package e2e

import (
	"context"
	"crypto/tls"
	"sync"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/internal/localhub"
	"github.com/directmethods/iotdevice/sas"
)

// countingCredential counts the tokens a credential signs and signals each.
type countingCredential struct {
	sas.Credential
	mu     sync.Mutex
	issued int
	signed chan struct{} // closed and replaced at each token
}

func (c *countingCredential) Token(ctx context.Context, resource string) (string, time.Time, error) {
	tok, expiry, err := c.Credential.Token(ctx, resource)
	c.mu.Lock()
	c.issued++
	close(c.signed)
	c.signed = make(chan struct{})
	c.mu.Unlock()
	return tok, expiry, err
}

func (c *countingCredential) ClientCertificate() *tls.Certificate { return nil }

// waitIssued waits until n tokens have been signed.
func (c *countingCredential) waitIssued(t *testing.T, n int, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), within)
	defer cancel()
	for {
		c.mu.Lock()
		issued, signed := c.issued, c.signed
		c.mu.Unlock()
		if issued >= n {
			return
		}
		select {
		case <-signed:
		case <-ctx.Done():
			t.Fatalf("%d tokens signed within %v, want %d", issued, within, n)
		}
	}
}

// TestTokenRenewalUnderLoad runs a client whose tokens live a few seconds
// while an invoker calls it continuously with a connect timeout of 5 s:
// through at least 10 renewals, no call fails (but for requests lost in
// flight, see below, which are counted). Each renewal's gap is measured:
// on transports that renew by reconnecting, from the new attempt to
// connected; in-band renewals show no state change at all.
//
// A renewal starts at 80 % of the token's lifetime, so the last 20 % must
// cover a renewal: a reconnection, or a put-token round trip. The
// lifetime is therefore derived from how long a connection takes on this
// machine now: at least 2 s, and 25 times a measured connection, so that
// a loaded machine gets the same margin as an idle one.
func TestTokenRenewalUnderLoad(t *testing.T) {
	const renewals = 10
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startHub(t, "dev-1")
			cs, err := hub.ConnectionString("dev-1")
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := sas.ParseConnectionString(cs)
			if err != nil {
				t.Fatal(err)
			}
			lifetime := max(2*time.Second, 25*measureConnection(t, hub, tr))
			t.Logf("figure: renewal-lifetime transport=%s lifetime_ms=%d", tr, lifetime.Milliseconds())
			key, err := sas.NewKeyCredential(parsed.SharedAccessKey, "", lifetime)
			if err != nil {
				t.Fatal(err)
			}
			cred := &countingCredential{Credential: key, signed: make(chan struct{})}
			states := newStateLog()
			opts := deviceOptions(t, hub, tr)
			states.tweak(opts)
			client, err := device.NewClient(parsed.HostName, "dev-1", cred, opts)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			requests := newRequestLog()
			go func() { done <- client.Run(context.Background(), requests.echoHandler()) }() // joined in cleanup
			t.Cleanup(func() {
				client.Close()
				if err := <-done; err != device.ErrClientClosed {
					t.Errorf("Run = %v, want ErrClientClosed", err)
				}
			})
			states.waitFor(t, device.StateConnected, 1, 20*time.Second)
			waitSubscribed(t, hub, "dev-1")

			inv := startInvoker(t, hub.ServiceClient(), "dev-1", "renewal", 5)
			cred.waitIssued(t, 1+renewals, renewals*lifetime+30*time.Second)
			since := time.Now()
			inv.waitSuccesses(t, since, 3, 20*time.Second) // the load ran to the end
			inv.stop()

			results := inv.snapshot()
			failed, lostByHub := 0, 0
			var slowest time.Duration
			for i, r := range results {
				slowest = max(slowest, r.took)
				switch {
				case r.err == nil:
				case isResponseTimeout(r.err) && !requests.sawPayload(r.payload):
					// A request the hub wrote as a connection ended (a
					// renewal that met the token's expiry) never reaches
					// the device. Counted.
					lostByHub++
				default:
					if failed++; failed <= 10 {
						t.Errorf("call %d at %s: %v", i, r.at.Format(time.StampMilli), r.err)
					}
				}
			}
			if lostByHub > 0 {
				t.Logf("figure: renewal-lost-by-hub transport=%s calls=%d", tr, lostByHub)
			}
			if failed > 0 {
				t.Errorf("%d of %d calls failed across the renewals, want none", failed, len(results))
			}
			// A renewal quiesces the connection and answers every request
			// it received before closing it: none is dropped.
			if st := client.Stats(); st.RequestsDropped != 0 {
				t.Errorf("Stats().RequestsDropped = %d across the renewals, want 0", st.RequestsDropped)
			}
			events := states.snapshot()
			if n := states.count(device.StateDisconnected); n > 0 {
				t.Errorf("%d disconnections during renewals: %v", n, events)
			}
			// Gaps of renewals by reconnection: each later attempt to its
			// connection.
			var gaps []time.Duration
			var attemptAt time.Time
			connected := 0
			for _, e := range events {
				switch e.state {
				case device.StateConnecting:
					attemptAt = e.at
				case device.StateConnected:
					if connected++; connected > 1 {
						gaps = append(gaps, e.at.Sub(attemptAt))
					}
				}
			}
			cred.mu.Lock()
			issued := cred.issued
			cred.mu.Unlock()
			if len(gaps) == 0 {
				t.Logf("figure: renewal transport=%s mode=in-band gap_ms=0 renewals=%d calls=%d slowest_call_ms=%d", tr, issued-1, len(results), slowest.Milliseconds())
			}
			var worst time.Duration
			for _, g := range gaps {
				worst = max(worst, g)
				t.Logf("figure: renewal transport=%s mode=reconnect gap_ms=%d", tr, g.Milliseconds())
			}
			if len(gaps) > 0 {
				t.Logf("figure: renewal-summary transport=%s mode=reconnect renewals=%d max_gap_ms=%d calls=%d slowest_call_ms=%d", tr, len(gaps), worst.Milliseconds(), len(results), slowest.Milliseconds())
				if len(gaps) < renewals {
					t.Errorf("%d reconnections for %d tokens", len(gaps), issued)
				}
			}
		})
	}
}

// measureConnection connects a client for identity dev-1 of hub over
// transportName once and returns how long it took to be connected and
// subscribed.
func measureConnection(t *testing.T, hub *localhub.Hub, transportName string) time.Duration {
	t.Helper()
	cs, err := hub.ConnectionString("dev-1")
	if err != nil {
		t.Fatal(err)
	}
	states := newStateLog()
	opts := deviceOptions(t, hub, transportName)
	states.tweak(opts)
	client, err := device.NewClientFromConnectionString(cs, opts)
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	done := make(chan error, 1)
	go func() { done <- client.Run(context.Background(), echoMux()) }() // joined below
	connected := states.waitFor(t, device.StateConnected, 1, 20*time.Second)
	took := connected.at.Sub(begin)
	client.Close()
	<-done
	return took
}
