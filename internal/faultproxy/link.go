package faultproxy

import (
	"bytes"
	"net"
	"sync"
	"time"
)

// MaxHeld is the most bytes the proxy holds in one direction of one
// connection: read from one peer and not yet written to the other. When a
// direction holds that much, the proxy stops reading its source until the
// link has sent some, as a real link's buffers fill; the sender's writes
// then block once its own socket buffers are full. Bytes in flight count
// too, so a link whose bandwidth-delay product exceeds MaxHeld carries at
// most MaxHeld per latency (256 KB per 150 ms is 1.7 MB/s).
const MaxHeld = 256 << 10

const (
	// linkChunk is the most bytes read at once, and so the unit a link
	// sends: a chunk is written whole once serialised and propagated.
	// 4 KB takes 62 ms at 64 KB/s, small enough for a smooth rate.
	linkChunk = 4 << 10
	// maxSegments bounds the reads one direction holds whatever their
	// size, so that a peer that writes a byte at a time cannot grow the
	// queue's bookkeeping past what MaxHeld bytes in full chunks need.
	maxSegments = 1024
)

// segment is what one read returned: bytes, or the end of the stream.
type segment struct {
	data []byte
	end  bool      // the source ended or failed; data is empty
	at   time.Time // when the proxy read it
}

// link is one direction of a pair: a reader that queues what src sends,
// and a writer that delivers it to dst as the proxy's settings for the
// direction allow. They share only the queue.
type link struct {
	pr       *pair
	dir      Direction
	src, dst net.Conn

	mu     sync.Mutex
	queue  []segment     // read and not yet written, in order
	held   int           // bytes in queue
	peak   int           // the most bytes queue has held
	queued chan struct{} // buffered 1: the reader queued a segment
	freed  chan struct{} // buffered 1: the writer dropped segments

	timer *time.Timer // the writer's, reused across its waits
}

func newLink(pr *pair, dir Direction, src, dst net.Conn) *link {
	return &link{pr: pr, dir: dir, src: src, dst: dst,
		queued: make(chan struct{}, 1), freed: make(chan struct{}, 1)}
}

// heldBytes returns the bytes the link holds now.
func (l *link) heldBytes() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held
}

// notify wakes the goroutine waiting on c, if any, without blocking.
func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// read queues what src sends until src ends or fails, then queues the end
// of the stream. It holds at most MaxHeld: when the queue is full it stops
// reading until the writer has delivered some.
func (l *link) read() {
	buf := make([]byte, min(linkChunk, l.pr.proxy.heldLimit(l.dir)))
	for l.waitRoom() {
		n, err := l.src.Read(buf)
		at := time.Now()
		if n > 0 {
			l.push(segment{data: bytes.Clone(buf[:n]), at: at})
		}
		if err != nil {
			// The end goes through the link as bytes do, after them.
			l.push(segment{end: true, at: at})
			return
		}
	}
}

// waitRoom waits until the queue has room for a full read; false when the
// pair closed first.
func (l *link) waitRoom() bool {
	limit := l.pr.proxy.heldLimit(l.dir)
	for {
		l.mu.Lock()
		room := l.held+min(linkChunk, limit) <= limit && len(l.queue) < maxSegments
		l.mu.Unlock()
		if room {
			return true
		}
		select {
		case <-l.freed:
		case <-l.pr.done:
			return false
		}
	}
}

func (l *link) push(s segment) {
	l.mu.Lock()
	l.queue = append(l.queue, s)
	l.held += len(s.data)
	l.peak = max(l.peak, l.held)
	l.mu.Unlock()
	notify(l.queued)
}

// write delivers the queued segments to dst in order until the pair
// closes, a write fails, the stream ends or it is cut.
//
// The link keeps a clock: when it finished serialising the segment
// before. A segment starts serialising when it has been read and the link
// is free (and not before a black hole or a stall in its way ends), takes
// its size over the bandwidth, and is written the latency after that.
// Every time derives from the clock, not from when the goroutine wakes,
// so a transfer keeps its rate however late timers fire; one goroutine
// writing in order keeps the bytes in order.
func (l *link) write() {
	defer func() {
		if l.timer != nil {
			l.timer.Stop()
		}
	}()
	var clock time.Time
	var batch []segment
	for {
		head, ok := l.head()
		if !ok {
			return
		}
		sh, sent, ok := l.await(head, clock)
		if !ok {
			return
		}
		batch, clock = l.take(batch[:0], sh, sent)
		if !l.deliver(batch) {
			return
		}
		clear(batch) // let the bytes go
	}
}

// head waits for the first queued segment; false when the pair closed
// first.
func (l *link) head() (segment, bool) {
	for {
		l.mu.Lock()
		if len(l.queue) > 0 {
			s := l.queue[0]
			l.mu.Unlock()
			return s, true
		}
		l.mu.Unlock()
		select {
		case <-l.queued:
		case <-l.pr.done:
			return segment{}, false
		}
	}
}

// shape is the proxy's settings for one direction at one instant.
type shape struct {
	open      bool      // neither black-holed nor stalled
	stallEnd  time.Time // when the stall that closes it ends; zero if none
	bandwidth int       // bytes per second, 0 for unlimited
	latency   time.Duration
	changed   <-chan struct{} // closed when the settings change
}

// serialise returns how long the link takes to send n bytes.
func (s shape) serialise(n int) time.Duration {
	if s.bandwidth <= 0 {
		return 0
	}
	return time.Duration(int64(n) * int64(time.Second) / int64(s.bandwidth))
}

// shape returns the settings for dir at now.
func (p *Proxy) shape(dir Direction, now time.Time) shape {
	i := dirIndex(dir)
	p.mu.Lock()
	defer p.mu.Unlock()
	s := shape{bandwidth: p.bandwidth[i], latency: p.latency[i], changed: p.changed}
	switch {
	case p.blackHole&dir != 0: // until Restore
	case now.Before(p.stallUntil[i]):
		s.stallEnd = p.stallUntil[i]
	default:
		s.open = true
	}
	return s
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// await waits until seg may be written: its direction is open, and seg
// has been serialised (from the later of clock and its reading, at the
// bandwidth) and propagated (the latency). While the direction is closed,
// seg counts as held for WaitHeld; it starts serialising when the
// direction opens. Settings are read again whenever they change, so a new
// bandwidth or latency applies to seg too. await returns the settings in
// force and when seg finished serialising; false when the pair closed.
func (l *link) await(seg segment, clock time.Time) (shape, time.Time, bool) {
	p, i := l.pr.proxy, dirIndex(l.dir)
	start := later(clock, seg.at)
	blocked, counted := false, false
	defer func() {
		if counted {
			p.update(func() { p.held[i]-- })
		}
	}()
	for {
		now := time.Now()
		sh := p.shape(l.dir, now)
		if sh.open == counted { // entering or leaving a black hole or stall
			counted = !counted
			p.update(func() {
				if counted {
					p.held[i]++
				} else {
					p.held[i]--
				}
			})
			continue // update replaced sh.changed
		}
		wake := sh.stallEnd // zero: only a change of settings ends the wait
		if sh.open {
			if blocked {
				// Nothing was sent while closed: serialisation starts now.
				start, blocked = later(start, now), false
			}
			sent := start.Add(sh.serialise(len(seg.data)))
			wake = sent.Add(sh.latency)
			if !now.Before(wake) {
				return sh, sent, true
			}
		} else {
			blocked = true
		}
		var fire <-chan time.Time
		if !wake.IsZero() {
			if l.timer == nil {
				l.timer = time.NewTimer(time.Until(wake))
			} else {
				l.timer.Reset(time.Until(wake))
			}
			fire = l.timer.C
		}
		select {
		case <-fire:
		case <-sh.changed:
		case <-l.pr.done:
			return shape{}, time.Time{}, false
		}
	}
}

// take appends to batch the head of the queue, which await found due and
// which finished serialising at sent, and the segments after it that are
// due by now too (all that are queued when the link is unshaped), and
// returns the clock after them.
func (l *link) take(batch []segment, sh shape, sent time.Time) ([]segment, time.Time) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	batch = append(batch, l.queue[0])
	clock := sent
	for _, s := range l.queue[1:] {
		next := later(clock, s.at).Add(sh.serialise(len(s.data)))
		if next.Add(sh.latency).After(now) {
			break
		}
		batch = append(batch, s)
		clock = next
	}
	return batch, clock
}

// deliver writes batch to dst in one write, applying an armed cut, and
// drops it from the queue. It returns false when the writer must stop:
// the stream ended (the pair closes), the write failed (likewise) or the
// cut ended the stream in this direction.
func (l *link) deliver(batch []segment) bool {
	bufs := make(net.Buffers, 0, len(batch))
	end, cut := false, false
	for _, s := range batch {
		if s.end {
			end = true
			break
		}
		chunk, cutNow := l.pr.takeCut(l.dir, s.data)
		if len(chunk) > 0 {
			bufs = append(bufs, chunk)
		}
		if cutNow {
			cut = true
			break
		}
	}
	var err error
	if len(bufs) > 0 {
		_, err = bufs.WriteTo(l.dst)
	}
	l.drop(len(batch))
	switch {
	case err != nil || end:
		l.pr.close(false)
		return false
	case cut:
		if tc, ok := l.dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		return false
	}
	return true
}

// drop removes the first n segments from the queue and wakes the reader.
func (l *link) drop(n int) {
	l.mu.Lock()
	for _, s := range l.queue[:n] {
		l.held -= len(s.data)
	}
	clear(l.queue[:n])
	l.queue = l.queue[n:]
	l.mu.Unlock()
	notify(l.freed)
}
