package device

import (
	"slices"
	"time"
)

// workerIdle is how long a worker waits parked for its next call before
// it ends. A steady stream of calls thus reuses warm goroutines (their
// stacks already grown), while a client that goes quiet holds none.
const workerIdle = 5 * time.Second

// worker is a goroutine that runs calls one after the other. Between
// calls it parks on its own channel instead of ending.
type worker struct {
	next chan *call // buffered 1: the next call to run, or nil to end
}

// The pool. Parked workers form a stack, the most recently parked on top,
// so that the same few workers serve a steady load and the rest go cold.
// A sweep every workerIdle ends the workers at the bottom that stayed
// parked through a whole period (below the stack's low-water mark), so a
// worker ends after between one and two workerIdle of idleness. All of it
// is guarded by d.mu.

// launchLocked gives c, which holds a slot, to a parked worker, or says to
// start one (nil). d.mu is held; call launch after unlocking.
func (d *dispatcher) launchLocked(c *call) *worker {
	d.running[c] = struct{}{}
	n := len(d.parked)
	if n == 0 {
		return nil
	}
	w := d.parked[n-1]
	d.parked[n-1] = nil
	d.parked = d.parked[:n-1]
	d.fewestParked = min(d.fewestParked, n-1)
	return w
}

// launch runs c on w, or on a new worker when w is nil.
func (d *dispatcher) launch(w *worker, c *call) {
	if w != nil {
		w.next <- c // never blocks: w is parked and its buffer empty
		return
	}
	w = &worker{next: make(chan *call, 1)}
	d.spawned.Add(1)
	d.workers.Add(1)
	go d.work(w, c) // owned by the dispatcher: joined by shutdown through d.workers, or let go when its handler overruns
}

// work is a worker's life: run calls, parking between them, until parked
// for too long, until the pool closes, or until its handler overruns its
// deadline (the slot then went on without it, and whoever answered for the
// handler released the worker from d.workers).
func (d *dispatcher) work(w *worker, c *call) {
	for c != nil {
		if !d.run(c) {
			return
		}
		c = d.park(w, c)
	}
	d.workers.Done()
}

// park is called by a worker that has answered done. It returns the next
// call for the worker: a queued one at once (the slot passes on), or,
// once the slot is freed, whatever comes while it waits parked. nil means
// the worker ends.
func (d *dispatcher) park(w *worker, done *call) *call {
	d.mu.Lock()
	delete(d.running, done)
	if c := d.dequeueLocked(); c != nil {
		d.running[c] = struct{}{}
		d.mu.Unlock()
		return c
	}
	d.releaseSlotLocked()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.parked = append(d.parked, w)
	if !d.sweeping {
		d.sweeping = true
		d.fewestParked = len(d.parked)
		if d.sweeper == nil {
			d.sweeper = time.AfterFunc(workerIdle, d.sweep) // runs on its own goroutine; stopped by closePool
		} else {
			d.sweeper.Reset(workerIdle)
		}
	}
	d.mu.Unlock()
	return <-w.next
}

// sweep ends the workers that stayed parked through the whole period since
// the last sweep, and sets the next sweep while any worker stays parked.
func (d *dispatcher) sweep() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		if d.sweepEnded != nil {
			close(d.sweepEnded)
		}
		return
	}
	cold := d.fewestParked
	for _, w := range d.parked[:cold] {
		w.next <- nil
	}
	d.parked = slices.Delete(d.parked, 0, cold)
	d.fewestParked = len(d.parked)
	d.sweeping = len(d.parked) > 0
	if d.sweeping {
		d.sweeper.Reset(workerIdle)
	}
}

// closePool ends the parked workers and waits for every worker still in
// the pool. Workers left running an overrun handler are not waited for:
// Go cannot stop them. Called once no call is left to answer.
func (d *dispatcher) closePool() {
	d.mu.Lock()
	d.closed = true
	for _, w := range d.parked {
		w.next <- nil
	}
	d.parked = nil
	if d.sweeping && !d.sweeper.Stop() {
		// The sweep has fired and waits for d.mu: let it see the pool
		// closed, and wait until it has.
		d.sweepEnded = make(chan struct{})
	}
	sweepEnded := d.sweepEnded
	d.mu.Unlock()
	if sweepEnded != nil {
		<-sweepEnded
	}
	d.workers.Wait()
}

// parkedWorkers returns how many workers are parked (for tests).
func (d *dispatcher) parkedWorkers() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.parked)
}
