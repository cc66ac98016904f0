package amqp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	goamqp "github.com/Azure/go-amqp"
	"github.com/directmethods/iotdevice/transport"
)

// defaultMaxUnsettledAnswers bounds the answers awaiting the hub's
// disposition on one connection. A hub settles an answer within a round
// trip, so the bound is reached only by a hub that stops settling; it
// exceeds the receiver's credit (receiverCredit), the requests the hub may
// have in flight at once, so that a hub settling within a round trip never
// meets it.
const defaultMaxUnsettledAnswers = 128

// settlementRetries is how often an answer's receipt is asked again once
// it reported the link's end: see settlement.
const settlementRetries = 32

// Errors given to Config.AnswerLost for answers the hub did not accept.
// An answer lost with its connection wraps transport.ErrConnLost instead.
var (
	// errAnswerRejected: the hub settled the answer as rejected. The
	// error also wraps the hub's *goamqp.Error, if it sent one.
	errAnswerRejected = errors.New("amqp: the hub rejected the answer")
	// errAnswerReleased: the hub settled the answer as released or
	// modified, without processing it.
	errAnswerReleased = errors.New("amqp: the hub did not process the answer")
	// errAnswerUntracked: more answers awaited the hub's disposition
	// than the adapter tracks, and this one, the oldest, was given up.
	errAnswerUntracked = errors.New("amqp: answer given up: too many answers awaited the hub's acknowledgement")
)

// receipt is the settlement of one sent answer: a *goamqp.SendReceipt.
type receipt interface {
	Wait(ctx context.Context) (goamqp.DeliveryState, error)
}

// answer is an answer written unsettled, awaiting the hub's disposition.
type answer struct {
	receipt receipt
	req     *transport.MethodRequest
	status  int

	// Guarded by answerTracker.mu.
	cancel  context.CancelFunc // ends the tracker's wait for this answer
	givenUp bool               // evicted by a newer answer
}

// answerTracker awaits the hub's outcome of every answer sent unsettled
// on one connection. One goroutine waits for the receipts in the order the
// answers were sent, so an answer costs no goroutine of its own, and
// reports each answer the hub did not accept through lost (the Config's
// AnswerLost, which may be nil). At most limit answers are tracked: one
// more gives the oldest up, reported with errAnswerUntracked, and track
// never waits.
type answerTracker struct {
	lost  func(req *transport.MethodRequest, status int, err error)
	log   *slog.Logger
	limit int

	mu      sync.Mutex
	pending []*answer // oldest first, at most limit
	givenUp []*answer // evicted before the goroutine waited for them
	stopped bool

	wake   chan struct{} // cap 1: pending or givenUp grew
	ctx    context.Context
	cancel context.CancelFunc // called by stop
	wg     sync.WaitGroup
}

// newAnswerTracker starts the goroutine of a tracker; stop ends it.
func newAnswerTracker(limit int, lost func(*transport.MethodRequest, int, error), log *slog.Logger) *answerTracker {
	ctx, cancel := context.WithCancel(context.Background())
	t := &answerTracker{lost: lost, log: log, limit: limit, wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel}
	t.wg.Go(t.run) // owned by the tracker's Conn; stopped by stop (t.cancel); joined in stop
	return t
}

// track adds an answer just written. It reports false once stop has begun:
// the answer is then not tracked, and the caller reports its fate itself.
func (t *answerTracker) track(r receipt, req *transport.MethodRequest, status int) bool {
	a := &answer{receipt: r, req: req, status: status}
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return false
	}
	if len(t.pending) >= t.limit {
		oldest := t.pending[0]
		t.pending = append(t.pending[:0], t.pending[1:]...)
		oldest.givenUp = true
		if oldest.cancel != nil {
			oldest.cancel() // the goroutine waits for it and reports it
		} else {
			t.givenUp = append(t.givenUp, oldest)
		}
	}
	t.pending = append(t.pending, a)
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
	return true
}

// stop ends tracking, once the connection is closed: answers still
// unsettled are reported as lost with it. It waits for the goroutine.
func (t *answerTracker) stop() {
	t.mu.Lock()
	t.stopped = true
	t.mu.Unlock()
	t.cancel()
	t.wg.Wait()
}

// run reports given-up answers and awaits the oldest pending one, until
// stop and nothing is left.
func (t *answerTracker) run() {
	for {
		t.mu.Lock()
		if len(t.givenUp) > 0 {
			a := t.givenUp[0]
			t.givenUp = append(t.givenUp[:0], t.givenUp[1:]...)
			t.mu.Unlock()
			t.report(a, t.untracked())
			continue
		}
		if len(t.pending) == 0 {
			stopped := t.stopped
			t.mu.Unlock()
			if stopped {
				return
			}
			select {
			case <-t.wake:
			case <-t.ctx.Done():
			}
			continue
		}
		a := t.pending[0]
		ctx, cancel := context.WithCancel(t.ctx)
		a.cancel = cancel
		t.mu.Unlock()

		state, err := settlement(ctx, a.receipt)
		cancel()

		t.mu.Lock()
		a.cancel = nil
		givenUp := a.givenUp
		if !givenUp { // still the oldest: only track and run take from the front
			t.pending = append(t.pending[:0], t.pending[1:]...)
		}
		t.mu.Unlock()
		switch {
		case err == nil:
			t.report(a, answerOutcome(state))
		case givenUp:
			t.report(a, t.untracked())
		default:
			t.report(a, answerEnded(err))
		}
	}
}

func (t *answerTracker) untracked() error {
	return fmt.Errorf("%w (more than %d)", errAnswerUntracked, t.limit)
}

// report tells lost of an answer the hub did not accept; err nil means it
// did. It runs on the tracker's goroutine, with no lock held.
func (t *answerTracker) report(a *answer, err error) {
	if err == nil {
		return
	}
	if t.log.Enabled(context.Background(), slog.LevelDebug) {
		t.log.Debug("amqp: answer not acknowledged", "method", a.req.Name, "request_id", a.req.RequestID, "status", a.status, "err", err)
	}
	if t.lost != nil {
		t.lost(a.req, a.status, err)
	}
}

// settlement waits for r's outcome. go-amqp's SendReceipt.Wait picks at
// random among what is ready: the outcome, the link's end and ctx's end.
// So once it has returned an error, it is asked again: whatever made it
// return stays ready, so a retry never blocks, and an outcome that had
// arrived as well is found unless settlementRetries draws all miss it
// (a chance below 2^-18).
func settlement(ctx context.Context, r receipt) (goamqp.DeliveryState, error) {
	state, err := r.Wait(ctx)
	for i := 0; err != nil && i < settlementRetries; i++ {
		state, err = r.Wait(ctx)
	}
	return state, err
}

// answerOutcome is the error to report for an answer the hub settled with
// state, or nil for accepted.
func answerOutcome(state goamqp.DeliveryState) error {
	switch s := state.(type) {
	case *goamqp.StateAccepted:
		return nil
	case *goamqp.StateRejected:
		if s.Error != nil {
			return fmt.Errorf("%w: %w", errAnswerRejected, s.Error)
		}
		return fmt.Errorf("%w, without an error condition", errAnswerRejected)
	case *goamqp.StateReleased:
		return fmt.Errorf("%w: released", errAnswerReleased)
	case *goamqp.StateModified:
		return fmt.Errorf("%w: modified (delivery-failed %t, undeliverable-here %t)", errAnswerReleased, s.DeliveryFailed, s.UndeliverableHere)
	}
	return fmt.Errorf("amqp: the hub settled the answer without accepting it (state %T)", state)
}

// answerEnded is the error to report for an answer whose link or
// connection ended (or was closed) before the hub settled it.
func answerEnded(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("amqp: the connection closed before the hub acknowledged the answer: %w", transport.ErrConnLost)
	}
	return fmt.Errorf("amqp: the connection ended before the hub acknowledged the answer: %w: %w", transport.ErrConnLost, err)
}
