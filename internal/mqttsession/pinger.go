package mqttsession

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// errNoPingresp ends a connection whose PINGREQ went unanswered.
var errNoPingresp = errors.New("no PINGRESP")

// pinger keeps a connection alive and finds out when it is dead. It sends
// PINGREQ once per keep-alive, whatever else the connection carries, and
// fails the connection when the PINGRESP has not come within the ping
// timeout of the PINGREQ being written.
//
// Pinging on a fixed cadence rather than after a silence costs two bytes
// each way per keep-alive, and proves what traffic cannot: that the hub
// still reads what the device writes. Answers that a kernel buffer
// absorbed but the hub never read leave the PINGREQ behind them unread,
// so the PINGRESP does not come. The wait starts once the PINGREQ has been
// written, so a slow write does not eat into it, and a link that stalls for
// less than the ping timeout costs nothing.
//
// It has no goroutine of its own: a timer runs tick, which writes the
// PINGREQ on the timer's goroutine. stop joins a tick in progress.
type pinger struct {
	keepAlive time.Duration
	timeout   time.Duration
	send      func() error // writes PINGREQ; returns once it is written or failed
	fail      func(error)  // ends the connection

	mu          sync.Mutex
	timer       *time.Timer
	outstanding bool      // a PINGREQ is being written or awaits its PINGRESP
	sent        time.Time // when the outstanding PINGREQ was written; zero while it is written
	stopped     bool
	ticking     sync.WaitGroup // ticks in progress, joined by stop
}

// startPinger returns a pinger whose first PINGREQ goes one keep-alive from
// now.
func startPinger(keepAlive, timeout time.Duration, send func() error, fail func(error)) *pinger {
	p := &pinger{keepAlive: keepAlive, timeout: timeout, send: send, fail: fail}
	p.mu.Lock()
	p.timer = time.AfterFunc(keepAlive, p.tick) // runs on its own goroutine each time; joined by stop
	p.mu.Unlock()
	return p
}

// tick sends the next PINGREQ, or fails the connection when the last one
// went unanswered for the ping timeout.
func (p *pinger) tick() {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	p.ticking.Add(1)
	defer p.ticking.Done()
	if p.outstanding {
		waited := time.Since(p.sent)
		p.mu.Unlock()
		p.fail(fmt.Errorf("%w within %v", errNoPingresp, waited.Round(time.Millisecond)))
		return
	}
	p.outstanding = true
	p.mu.Unlock()

	err := p.send()
	written := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case err != nil || p.stopped:
		// A failed write has ended the connection already.
	case !p.outstanding:
		// The PINGRESP came while the write returned.
		p.timer.Reset(p.keepAlive)
	default:
		p.sent = written
		p.timer.Reset(p.timeout)
	}
}

// pong records a PINGRESP. The next PINGREQ goes one keep-alive after the
// last one was written, or at once if that time has passed.
func (p *pinger) pong() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.outstanding || p.stopped {
		return // unsolicited, or too late to matter
	}
	p.outstanding = false
	if !p.sent.IsZero() {
		p.timer.Reset(max(p.keepAlive-time.Since(p.sent), 0))
		p.sent = time.Time{}
	} // else tick is still returning from the write, and sets the timer
}

// stop stops the pinger and waits for a tick in progress. It is
// idempotent.
func (p *pinger) stop() {
	p.mu.Lock()
	p.stopped = true
	p.timer.Stop()
	p.mu.Unlock()
	p.ticking.Wait()
}
