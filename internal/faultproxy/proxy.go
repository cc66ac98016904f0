package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Direction selects which way bytes flow through a connection.
type Direction int

const (
	// ToTarget is the client-to-target direction.
	ToTarget Direction = 1 << iota
	// ToClient is the target-to-client direction.
	ToClient
	// Both is both directions.
	Both = ToTarget | ToClient
)

// String names d.
func (d Direction) String() string {
	switch d {
	case ToTarget:
		return "to-target"
	case ToClient:
		return "to-client"
	case Both:
		return "both"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// dialTimeout bounds the connection to the target of each accepted client.
const dialTimeout = 10 * time.Second

// Proxy forwards the connections it accepts on 127.0.0.1 to a target
// address. Its methods are safe for concurrent use.
type Proxy struct {
	target   string
	listener net.Listener
	ctx      context.Context // ends when Close starts
	cancel   context.CancelFunc
	wg       sync.WaitGroup // the accept loop and every connection's goroutines

	mu          sync.Mutex
	closed      bool
	pairs       map[*pair]struct{}
	blackHole   Direction
	latency     [2]time.Duration // one-way delay per direction (dirIndex)
	bandwidth   [2]int           // bytes per second per direction, 0 for unlimited
	buffer      [2]int           // most bytes held per direction, 0 for MaxHeld (SetBuffer)
	stallUntil  [2]time.Time     // when a stall ends, per direction; zero when none
	cutDir      Direction        // armed cut for new connections, 0 when none
	cutBytes    int
	refuseUntil time.Time
	refuseAll   bool
	changed     chan struct{} // closed and replaced when the fault settings change
	accepted    int
	refused     int
	held        [2]int // segments a black hole or a stall holds now, per direction
}

// New starts a proxy on a free loopback port that forwards to target
// (host:port).
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		target: target, listener: ln, ctx: ctx, cancel: cancel,
		pairs: map[*pair]struct{}{}, changed: make(chan struct{}),
	}
	p.wg.Add(1)
	go p.acceptLoop() // owned by the proxy: ends when Close closes the listener, joined by Close
	return p, nil
}

// Addr returns the address clients dial, "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.listener.Addr().String() }

// Port returns the port clients dial.
func (p *Proxy) Port() int { return p.listener.Addr().(*net.TCPAddr).Port }

// Close stops accepting, closes every connection and waits for all the
// proxy's goroutines. It is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	pairs := p.takePairs()
	p.mu.Unlock()
	p.cancel()
	err := p.listener.Close()
	for _, pr := range pairs {
		pr.close(false)
	}
	p.wg.Wait()
	return err
}

// Reset resets both sides of every live connection: each peer sees a TCP
// RST, as when a NAT box or a load balancer drops its state.
func (p *Proxy) Reset() {
	p.mu.Lock()
	pairs := p.takePairs()
	p.mu.Unlock()
	for _, pr := range pairs {
		pr.close(true)
	}
}

// BlackHole stops forwarding in dir, on live and new connections, without
// closing anything: bytes and end-of-stream are held (as a dead link
// holds them) until Restore.
func (p *Proxy) BlackHole(dir Direction) {
	p.update(func() { p.blackHole |= dir })
}

// Restore ends black holes and stalls and disarms pending cuts; held
// bytes flow on, in order. Bandwidth and latency stay as they were set.
func (p *Proxy) Restore() {
	p.update(func() {
		p.blackHole = 0
		p.stallUntil = [2]time.Time{}
		p.cutDir, p.cutBytes = 0, 0
		for pr := range p.pairs {
			pr.cut = [2]int{-1, -1}
		}
	})
}

// SetLatency delays every byte by d in each direction, on live and new
// connections, so that a round trip takes twice d; zero removes the
// delay. It is SetOneWayLatency(Both, d).
func (p *Proxy) SetLatency(d time.Duration) { p.SetOneWayLatency(Both, d) }

// SetOneWayLatency delays every byte by d in dir (each direction of Both),
// on live and new connections: the propagation delay of a link, which
// adds to the time the bandwidth takes to send the bytes. A round trip
// takes the sum of both directions' latencies. Zero removes the delay;
// bytes already in flight are delivered by the new setting, never out of
// order.
func (p *Proxy) SetOneWayLatency(dir Direction, d time.Duration) {
	p.update(func() {
		for _, i := range dirIndexes(dir) {
			p.latency[i] = max(d, 0)
		}
	})
}

// SetBandwidth limits dir (each direction of Both) to bytesPerSecond, on
// live and new connections, as a link of that rate: bytes are sent in
// chunks of at most 4 KB, each taking its size over the rate to
// serialise, one after the other; the latency runs after that. Bytes the
// link cannot send yet are held in order, up to MaxHeld per connection and
// direction; beyond it the proxy stops reading, so the sender's writes
// block once its socket buffers fill. Zero (or less) means unlimited. A
// new rate applies to the chunk being sent.
func (p *Proxy) SetBandwidth(dir Direction, bytesPerSecond int) {
	p.update(func() {
		for _, i := range dirIndexes(dir) {
			p.bandwidth[i] = max(bytesPerSecond, 0)
		}
	})
}

// SetBuffer bounds what a link holds in dir (each direction of Both),
// bytes in flight included, to bytes instead of MaxHeld, as a slow path's
// small buffers do, and asks the kernel for a receive buffer of that size
// on the sockets of new connections that the direction reads, so that a
// sender's writes wait for the link instead of filling megabytes of
// loopback buffers. Zero (or less) means MaxHeld and the kernel's own
// buffers. Live connections keep their socket buffers.
func (p *Proxy) SetBuffer(dir Direction, bytes int) {
	p.update(func() {
		for _, i := range dirIndexes(dir) {
			p.buffer[i] = max(bytes, 0)
		}
	})
}

// heldLimit returns the most a link holds in dir.
func (p *Proxy) heldLimit(dir Direction) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b := p.buffer[dirIndex(dir)]; b > 0 {
		return min(b, MaxHeld)
	}
	return MaxHeld
}

// Stall stops forwarding in dir (each direction of Both) for d, on live
// and new connections, without closing anything: a black hole that ends
// by itself. Bytes and end-of-stream are held (up to MaxHeld per
// connection and direction, then the proxy stops reading) and flow on in
// order when d has passed or at Restore; the link then sends them at its
// bandwidth, from the end of the stall. A Stall replaces the end of a
// stall in progress in the same direction; d <= 0 ends it now.
func (p *Proxy) Stall(dir Direction, d time.Duration) {
	var until time.Time
	if d > 0 {
		until = time.Now().Add(d)
	}
	p.update(func() {
		for _, i := range dirIndexes(dir) {
			p.stallUntil[i] = until
		}
	})
}

// Held returns how many bytes the proxy holds now in dir (both
// directions for Both), over its live connections: bytes read from one
// peer and not yet written to the other, because of the link's bandwidth
// or latency, a black hole, a stall, or a peer that reads slowly.
func (p *Proxy) Held(dir Direction) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for pr := range p.pairs {
		for _, i := range dirIndexes(dir) {
			n += pr.links[i].heldBytes()
		}
	}
	return n
}

// CutAfter ends the stream in dir (each direction of Both) of each live
// connection, and of each one accepted until Restore, once n more bytes
// have been forwarded in it: the receiving peer sees an end of stream in
// the middle of whatever it was reading; the connection closes when a peer
// closes it.
func (p *Proxy) CutAfter(dir Direction, n int) {
	n = max(n, 0)
	p.update(func() {
		p.cutDir, p.cutBytes = dir, n
		for pr := range p.pairs {
			pr.armCut(dir, n)
		}
	})
}

// Refuse accepts and closes at once every new connection for d; live
// connections are untouched. d <= 0 refuses until Accept.
func (p *Proxy) Refuse(d time.Duration) {
	p.update(func() {
		if d <= 0 {
			p.refuseAll = true
			return
		}
		p.refuseUntil = time.Now().Add(d)
	})
}

// Accept ends a refusal started by Refuse.
func (p *Proxy) Accept() {
	p.update(func() { p.refuseAll, p.refuseUntil = false, time.Time{} })
}

// Accepted returns how many connections the proxy has accepted, refused
// ones included.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// Refused returns how many connections the proxy has closed at once
// because of Refuse.
func (p *Proxy) Refused() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused
}

// WaitHeld waits until a black hole or a stall in dir holds bytes (or the
// end of stream) that a peer sent:
// proof that the peer has written something that did not arrive. It
// fails when ctx ends first.
func (p *Proxy) WaitHeld(ctx context.Context, dir Direction) error {
	for {
		p.mu.Lock()
		held, changed := p.held[dirIndex(dir)], p.changed
		p.mu.Unlock()
		if held > 0 {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("faultproxy: nothing held %s: %w", dir, ctx.Err())
		}
	}
}

// Live returns how many connections are being forwarded now.
func (p *Proxy) Live() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pairs)
}

// update changes the fault settings under the lock and wakes the
// forwarding goroutines that wait for a change.
func (p *Proxy) update(f func()) {
	p.mu.Lock()
	f()
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// takePairs empties the set of live connections; p.mu is held.
func (p *Proxy) takePairs() []*pair {
	pairs := make([]*pair, 0, len(p.pairs))
	for pr := range p.pairs {
		pairs = append(pairs, pr)
	}
	clear(p.pairs)
	return pairs
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // a transient accept error; the listener is still open
		}
		p.mu.Lock()
		p.accepted++
		refuse := p.refuseAll || time.Now().Before(p.refuseUntil)
		if refuse {
			p.refused++
		}
		closed := p.closed
		if !refuse && !closed {
			p.wg.Add(1)
		}
		p.mu.Unlock()
		if refuse || closed {
			_ = c.Close()
			continue
		}
		go p.serve(c) // owned by the proxy: ends when the pair closes, joined by Close
	}
}

// serve dials the target for client and forwards both ways until either
// side ends or the proxy closes the pair.
func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	dialCtx, cancel := context.WithTimeout(p.ctx, dialTimeout)
	var d net.Dialer
	server, err := d.DialContext(dialCtx, "tcp", p.target)
	cancel()
	if err != nil {
		_ = client.Close()
		return
	}
	p.mu.Lock()
	buffer := p.buffer
	p.mu.Unlock()
	for i, c := range [2]net.Conn{client, server} { // ToTarget reads the client, ToClient the server
		if tc, ok := c.(*net.TCPConn); ok && buffer[i] > 0 {
			_ = tc.SetReadBuffer(buffer[i])
		}
	}
	pr := &pair{proxy: p, client: client, server: server, done: make(chan struct{}), cut: [2]int{-1, -1}}
	pr.links = [2]*link{newLink(pr, ToTarget, client, server), newLink(pr, ToClient, server, client)}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		pr.close(false)
		return
	}
	if p.cutDir != 0 {
		pr.armCut(p.cutDir, p.cutBytes)
	}
	p.pairs[pr] = struct{}{}
	p.mu.Unlock()

	var readers, writers sync.WaitGroup
	for _, l := range pr.links {
		readers.Go(l.read)  // owned by serve: ends when its source ends or the pair closes, joined below
		writers.Go(l.write) // owned by serve: ends when the pair closes or its stream is cut, joined below
	}
	writers.Wait()
	pr.close(false) // after cuts in both directions
	readers.Wait()
}
