package amqp

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"

	goamqp "github.com/Azure/go-amqp"
	"github.com/directmethods/iotdevice/transport"
	"github.com/google/go-cmp/cmp"
)

// fakeReceipt plays a goamqp.SendReceipt: the test settles it or ends its
// link.
type fakeReceipt struct {
	outcome chan goamqp.DeliveryState // cap 1
	ended   chan struct{}
	state   goamqp.DeliveryState
}

func newFakeReceipt() *fakeReceipt {
	return &fakeReceipt{outcome: make(chan goamqp.DeliveryState, 1), ended: make(chan struct{})}
}

var errFakeLinkEnded = &goamqp.LinkError{}

func (r *fakeReceipt) Wait(ctx context.Context) (goamqp.DeliveryState, error) {
	if r.state != nil {
		return r.state, nil
	}
	select {
	case s := <-r.outcome:
		r.state = s
		return s, nil
	case <-r.ended:
		return nil, errFakeLinkEnded
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// lostLog records AnswerLost calls by request name.
type lostLog struct {
	mu   sync.Mutex
	errs map[string][]error
	seq  []string
}

func (l *lostLog) lost(req *transport.MethodRequest, _ int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.errs == nil {
		l.errs = map[string][]error{}
	}
	l.errs[req.Name] = append(l.errs[req.Name], err)
	l.seq = append(l.seq, req.Name)
}

func (l *lostLog) order() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.seq...)
}

func (l *lostLog) only(t *testing.T, name string, want error) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	errs := l.errs[name]
	if len(errs) != 1 || !errors.Is(errs[0], want) {
		t.Errorf("AnswerLost for %s: %v, want once with %v", name, errs, want)
	}
}

func req(name string) *transport.MethodRequest { return &transport.MethodRequest{Name: name} }

var discard = slog.New(slog.DiscardHandler)

func TestAnswerTrackerOutcomes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log lostLog
		tr := newAnswerTracker(8, log.lost, discard)
		names := []string{"accepted", "rejected", "released", "modified", "received", "ended"}
		receipts := map[string]*fakeReceipt{}
		for _, n := range names {
			receipts[n] = newFakeReceipt()
			if !tr.track(receipts[n], req(n), 200) {
				t.Fatal("track refused before stop")
			}
		}
		// Settled out of order; reported in the order sent.
		close(receipts["ended"].ended)
		receipts["modified"].outcome <- &goamqp.StateModified{}
		receipts["received"].outcome <- &goamqp.StateReceived{}
		receipts["released"].outcome <- &goamqp.StateReleased{}
		receipts["rejected"].outcome <- &goamqp.StateRejected{Error: &goamqp.Error{Condition: goamqp.ErrCondNotAllowed}}
		receipts["accepted"].outcome <- &goamqp.StateAccepted{}
		synctest.Wait()
		if diff := cmp.Diff([]string{"rejected", "released", "modified", "received", "ended"}, log.order()); diff != "" {
			t.Errorf("reports (-want +got):\n%s", diff)
		}
		log.only(t, "rejected", errAnswerRejected)
		log.only(t, "released", errAnswerReleased)
		log.only(t, "modified", errAnswerReleased)
		log.only(t, "ended", transport.ErrConnLost)
		tr.stop()
	})
}

// TestAnswerTrackerBound: track never waits, and gives the oldest answers
// up beyond the bound, each reported once, whether the tracker was
// waiting for it or not yet.
func TestAnswerTrackerBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log lostLog
		tr := newAnswerTracker(2, log.lost, discard)
		rs := make([]*fakeReceipt, 6)
		for i := range rs {
			rs[i] = newFakeReceipt()
		}
		tr.track(rs[0], req("a"), 200)
		tr.track(rs[1], req("b"), 200)
		synctest.Wait() // waiting for a
		tr.track(rs[2], req("c"), 200)
		synctest.Wait()
		if diff := cmp.Diff([]string{"a"}, log.order()); diff != "" {
			t.Errorf("reports after one answer beyond the bound (-want +got):\n%s", diff)
		}
		// Three more before the tracker runs: b and c are given up as well
		// (b, which it waits for, and c, which it does not yet).
		tr.track(rs[3], req("d"), 200)
		tr.track(rs[4], req("e"), 200)
		tr.track(rs[5], req("f"), 200)
		synctest.Wait()
		if diff := cmp.Diff([]string{"a", "b", "c", "d"}, log.order()); diff != "" {
			t.Errorf("reports (-want +got):\n%s", diff)
		}
		for _, n := range []string{"a", "b", "c", "d"} {
			log.only(t, n, errAnswerUntracked)
		}
		rs[4].outcome <- &goamqp.StateAccepted{}
		rs[5].outcome <- &goamqp.StateAccepted{}
		tr.stop()
		if n := len(log.order()); n != 4 {
			t.Errorf("%d reports after the accepted answers, want 4", n)
		}
	})
}

// TestAnswerTrackerStop: answers unsettled at stop are reported lost with
// the connection; track refuses after stop; a nil AnswerLost is fine.
func TestAnswerTrackerStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log lostLog
		tr := newAnswerTracker(4, log.lost, discard)
		tr.track(newFakeReceipt(), req("a"), 200)
		tr.track(newFakeReceipt(), req("b"), 200)
		settled := newFakeReceipt()
		settled.outcome <- &goamqp.StateAccepted{}
		tr.track(settled, req("c"), 200)
		tr.stop()
		log.only(t, "a", transport.ErrConnLost)
		log.only(t, "b", transport.ErrConnLost)
		if diff := cmp.Diff([]string{"a", "b"}, log.order()); diff != "" {
			t.Errorf("reports (-want +got):\n%s", diff)
		}
		if tr.track(newFakeReceipt(), req("late"), 200) {
			t.Error("track accepted an answer after stop")
		}

		silent := newAnswerTracker(1, nil, discard)
		silent.track(newFakeReceipt(), req("x"), 200)
		silent.track(newFakeReceipt(), req("y"), 200)
		silent.stop()
	})
}
