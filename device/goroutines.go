package device

import (
	"context"
	"slices"
	"sync"
	"time"
)

// The dispatcher's goroutines. Each one receives, runs the calls it
// admits, and then, instead of ending, waits as a spare to take the next
// receiver role over. A spare's stack has grown to its handlers' needs,
// so a steady load reuses warm goroutines: starting a goroutine for every
// call and growing its stack cost 1.5 µs of a call (BenchmarkDispatchSDK/
// 100B on 2 cores: 3.7 µs without spares, 2.1–2.2 µs with). A spare idle
// for spareIdle ends, so a client that goes quiet holds none.

// spareIdle is how long a spare waits for a receiver role before it
// ends.
const spareIdle = 5 * time.Second

// role is the receiver role for one connection: at most one goroutine
// holds it, waiting in the connection's Receive.
type role struct {
	ctx     context.Context
	o       *origin
	end     chan<- error    // where the holder that sees Receive fail reports
	holders *sync.WaitGroup // the goroutines holding the role or about to
}

// spare is a goroutine waiting for a receiver role.
type spare struct {
	wake  chan role // buffered 1; closed to end the spare
	since time.Time // when it began to wait; guarded by dispatcher.mu
}

// serve gives the receiver role for the connection o to a spare or a new
// goroutine. The holder that sees Receive fail reports on end; holders
// counts the goroutines holding the role, so the caller can wait for the
// last one.
func (d *dispatcher) serve(ctx context.Context, o *origin, end chan<- error, holders *sync.WaitGroup) {
	d.handOver(role{ctx: ctx, o: o, end: end, holders: holders})
}

// handOver gives r to a spare, or to a new goroutine.
func (d *dispatcher) handOver(r role) {
	r.holders.Add(1)
	d.mu.Lock()
	if n := len(d.spares); n > 0 {
		s := d.spares[n-1]
		d.spares[n-1] = nil
		d.spares = d.spares[:n-1]
		d.mu.Unlock()
		s.wake <- r // never blocks: the spare's buffer is empty
		return
	}
	d.mu.Unlock()
	d.start(r, nil)
}

// start runs loop on a new goroutine, counted in d.goroutines.
func (d *dispatcher) start(r role, c *call) {
	d.goroutines.Add(1)
	go d.loop(r, c) // owned by the dispatcher: joined through d.goroutines
}

// loop is a dispatcher goroutine's life: run c if given, else hold the
// receiver role r and run the call it admits, then wait as a spare for the
// next role; until the pool closes, the spare stays idle for spareIdle,
// or a handler overruns its deadline (the goroutine then stays with the
// handler, released from d.goroutines by overrun).
func (d *dispatcher) loop(r role, c *call) {
	var s *spare
	for {
		if c == nil {
			c = d.receive(r)
		}
		if c != nil && !d.work(c) {
			return
		}
		c = nil
		var ok bool
		if r, ok = d.park(&s); !ok {
			d.goroutines.Done()
			return
		}
	}
}

// receive holds the receiver role r until it gets a request it may run at
// once; it hands the role over and returns the call. It returns nil once
// Receive fails, having reported the error.
func (d *dispatcher) receive(r role) *call {
	for {
		req, err := r.o.conn.Receive(r.ctx)
		if err != nil {
			r.end <- err
			r.holders.Done()
			return nil
		}
		c, now := d.accept(req, r.o)
		if !now {
			continue // queued or refused
		}
		d.handOver(r)
		r.holders.Done()
		return c
	}
}

// park waits as the spare *s (made on first use) for a receiver role. It
// reports false when the goroutine is to end: the pool is closing, enough
// spares wait already, or none came within spareIdle (see sweep).
func (d *dispatcher) park(s **spare) (role, bool) {
	if *s == nil {
		*s = &spare{wake: make(chan role, 1)}
	}
	sp := *s
	d.mu.Lock()
	if d.stopping || len(d.spares) >= cap(d.slots) {
		d.mu.Unlock()
		return role{}, false
	}
	sp.since = time.Now()
	d.spares = append(d.spares, sp)
	if !d.sweeping {
		d.sweeping = true
		if d.sweeper == nil {
			d.sweeper = time.AfterFunc(spareIdle, d.sweep) // runs on its own goroutine each time; stopped by closeSpares
		} else {
			d.sweeper.Reset(spareIdle)
		}
	}
	d.mu.Unlock()
	r, ok := <-sp.wake
	return r, ok
}

// sweep ends the spares that have waited spareIdle or longer (the oldest
// are first in d.spares), and sets itself again while spares wait. One
// timer serves all spares, so parking costs no timer operation.
func (d *dispatcher) sweep() {
	d.mu.Lock()
	defer d.mu.Unlock()
	cutoff := time.Now().Add(-spareIdle)
	n := 0
	for n < len(d.spares) && !d.spares[n].since.After(cutoff) {
		close(d.spares[n].wake)
		n++
	}
	d.spares = slices.Delete(d.spares, 0, n)
	d.sweeping = len(d.spares) > 0 && !d.stopping
	if d.sweeping {
		d.sweeper.Reset(time.Until(d.spares[0].since.Add(spareIdle)))
	}
}

// closeSpares ends the spares; called by the shutdown once no role is
// handed over any more.
func (d *dispatcher) closeSpares() {
	d.mu.Lock()
	spares := d.spares
	d.spares = nil
	if d.sweeper != nil {
		d.sweeper.Stop() // a sweep already started finds no spare
	}
	d.mu.Unlock()
	for _, s := range spares {
		close(s.wake)
	}
}
