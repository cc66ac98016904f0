package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// pipeServer accepts connections until the test ends and hands each to the
// test, which then plays the target's side.
func pipeServer(t *testing.T) (addr string, accepted <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 16)
	var wg sync.WaitGroup
	wg.Go(func() { // owned by the test: ends when the cleanup closes ln, joined there
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		close(conns)
		for c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String(), conns
}

// connect dials p and returns both ends: the client's, and the target's
// side of the same connection.
func connect(t *testing.T, p *Proxy, accepted <-chan net.Conn) (client, server net.Conn) {
	t.Helper()
	client = dial(t, p)
	select {
	case server = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("the proxy did not connect to the target")
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}

// ends returns the conn that sends in dir and the one that receives.
func ends(dir Direction, client, server net.Conn) (from, to net.Conn) {
	if dir == ToClient {
		return server, client
	}
	return client, server
}

// pattern returns n bytes of the stream the tests send, from offset: each
// byte is its offset modulo 251, so a byte lost, repeated or reordered
// shows.
func pattern(offset, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((offset + i) % 251)
	}
	return b
}

// sample is what one read returned: when, and how many bytes had arrived
// in all by then.
type sample struct {
	at    time.Time
	total int
}

// transfer writes n bytes of the pattern to from (from a goroutine it
// joins) and reads them from to, checking each byte; it returns when the
// write started and a sample per read.
func transfer(t *testing.T, from, to net.Conn, n int, within time.Duration) (time.Time, []sample) {
	t.Helper()
	written := make(chan error, 1)
	begin := time.Now()
	go func() { // owned by transfer: ends when the write returns, joined below
		_, err := from.Write(pattern(0, n))
		written <- err
	}()
	samples := receive(t, to, 0, n, within)
	if err := <-written; err != nil {
		t.Fatalf("write: %v", err)
	}
	return begin, samples
}

// receive reads n bytes of the pattern from c, starting at offset, within
// the given time; it fails the test on a wrong byte.
func receive(t *testing.T, c net.Conn, offset, n int, within time.Duration) []sample {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(within))
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, 2*MaxHeld) // more than the proxy ever holds: a read takes all that arrived
	var samples []sample
	for got := 0; got < n; {
		k, err := c.Read(buf[:min(len(buf), n-got)])
		at := time.Now()
		if k > 0 {
			if want := pattern(offset+got, k); string(buf[:k]) != string(want) {
				t.Fatalf("bytes %d to %d are not the ones sent, in order", offset+got, offset+got+k)
			}
			got += k
			samples = append(samples, sample{at, got})
		}
		if err != nil {
			t.Fatalf("read after %d of %d bytes: %v", got, n, err)
		}
	}
	return samples
}

// measureNoise measures how late the proxy delivers from → to (dir) on
// this machine now: how long an unshaped transfer of n bytes takes, plus
// the worst lateness of five single bytes given a 5 ms latency. The
// tests' tolerances are multiples of it. It leaves dir unshaped.
func measureNoise(t *testing.T, p *Proxy, dir Direction, from, to net.Conn, n int) time.Duration {
	t.Helper()
	begin, samples := transfer(t, from, to, n, 10*time.Second)
	unshaped := samples[len(samples)-1].at.Sub(begin)
	const probe = 5 * time.Millisecond
	p.SetOneWayLatency(dir, probe)
	defer p.SetOneWayLatency(dir, 0)
	var late time.Duration
	for range 5 {
		begin, samples := transfer(t, from, to, 1, 10*time.Second)
		late = max(late, samples[0].at.Sub(begin)-probe)
	}
	return unshaped + late
}

// peakHeld returns the most bytes any live connection has held in dir.
func peakHeld(p *Proxy, dir Direction) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	peak := 0
	for pr := range p.pairs {
		l := pr.links[dirIndex(dir)]
		l.mu.Lock()
		peak = max(peak, l.peak)
		l.mu.Unlock()
	}
	return peak
}

// TestLinkShapes sends a stream through each shape of link, set on a live
// connection, and measures when each byte arrives. No byte may arrive
// before the link could carry it: serialisation at the bandwidth (from
// the end of a stall), then the latency. That bound is exact. Nor may a
// byte arrive later than that by more than the tolerance, three times the
// delivery noise measured on the same connection just before plus 5 % of
// the transfer. The other direction stays unshaped.
func TestLinkShapes(t *testing.T) {
	tests := []struct {
		name      string
		dir       Direction
		bandwidth int // bytes per second
		latency   time.Duration
		stall     time.Duration
		size      int
	}{
		{"bandwidth to target", ToTarget, 64 << 10, 0, 0, 96 << 10},
		{"bandwidth over MaxHeld to client", ToClient, 256 << 10, 0, 0, 384 << 10},
		{"latency to target", ToTarget, 0, 200 * time.Millisecond, 0, 64 << 10},
		{"bandwidth then latency to client", ToClient, 128 << 10, 300 * time.Millisecond, 0, 128 << 10},
		{"stall to target", ToTarget, 0, 0, 500 * time.Millisecond, 64 << 10},
		{"stall, bandwidth and latency to client", ToClient, 128 << 10, 100 * time.Millisecond, 500 * time.Millisecond, 64 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, accepted := pipeServer(t)
			p := newProxy(t, target)
			client, server := connect(t, p, accepted)
			from, to := ends(tt.dir, client, server)
			noise := measureNoise(t, p, tt.dir, from, to, tt.size)

			shaped := time.Now()
			p.SetBandwidth(tt.dir, tt.bandwidth)
			p.SetOneWayLatency(tt.dir, tt.latency)
			p.Stall(tt.dir, tt.stall)
			start := shaped.Add(tt.stall) // the earliest the link may start sending
			// The other direction is untouched.
			back, _ := ends(Both&^tt.dir, client, server)
			if _, samples := transfer(t, back, from, 1, 5*time.Second); tt.latency+tt.stall > 0 {
				if d := samples[0].at.Sub(shaped); d >= tt.latency+tt.stall {
					t.Errorf("a byte the other way took %v: it was shaped too", d)
				}
			}

			begin, samples := transfer(t, from, to, tt.size, 30*time.Second)
			start = later(start, begin)
			serialise := shape{bandwidth: tt.bandwidth}.serialise
			ideal := start.Sub(begin) + serialise(tt.size) + tt.latency
			tolerance := 3*noise + ideal/20
			first, last := samples[0], samples[len(samples)-1]
			if earliest := start.Sub(begin) + tt.latency; first.at.Sub(begin) < earliest {
				t.Errorf("first byte after %v, want at least %v", first.at.Sub(begin), earliest)
			}
			for _, s := range samples {
				// Rounding loses under a nanosecond per chunk.
				earliest := start.Add(serialise(s.total) + tt.latency - time.Millisecond)
				if s.at.Before(earliest) {
					t.Errorf("%d bytes after %v, before the link could carry them (%v)", s.total, s.at.Sub(begin), earliest.Sub(begin))
				}
				latest := earliest.Add(time.Millisecond + tolerance + serialise(linkChunk))
				if s.at.After(latest) {
					t.Errorf("%d bytes after %v, later than %v", s.total, s.at.Sub(begin), latest.Sub(begin))
				}
			}
			elapsed := last.at.Sub(begin)
			if elapsed < ideal-time.Millisecond || elapsed > ideal+tolerance {
				t.Errorf("transfer took %v, want %v within -1ms/+%v", elapsed, ideal, tolerance)
			}
			if peak := peakHeld(p, tt.dir); peak > MaxHeld {
				t.Errorf("the proxy held %d bytes at most, over MaxHeld %d", peak, MaxHeld)
			}
			rate := ""
			if tt.bandwidth > 0 && last.at.After(first.at) {
				measured := float64(last.total-first.total) / last.at.Sub(first.at).Seconds()
				rate = fmt.Sprintf(" rate_Bps=%.0f set_Bps=%d rate_error_pct=%+.2f", measured, tt.bandwidth, 100*(measured/float64(tt.bandwidth)-1))
			}
			t.Logf("figure: link-shape case=%q ideal_ms=%.1f took_ms=%.1f late_ms=%.1f tolerance_ms=%.1f noise_ms=%.2f%s",
				tt.name, ms(ideal), ms(elapsed), ms(elapsed-ideal), ms(tolerance), ms(noise), rate)
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// TestBandwidthChangesOnALiveTransfer slows a transfer in progress, lifts
// the limit in the middle of it, and sets another: each applies to the
// bytes still in the proxy and after them, in order.
func TestBandwidthChangesOnALiveTransfer(t *testing.T) {
	const (
		slow  = 32 << 10
		size  = 1 << 20 // 32 s at slow
		first = 64 << 10
		again = 128 << 10
	)
	target, accepted := pipeServer(t)
	p := newProxy(t, target)
	client, server := connect(t, p, accepted)
	noise := measureNoise(t, p, ToTarget, client, server, size)

	p.SetBandwidth(ToTarget, slow)
	written := make(chan error, 1)
	begin := time.Now()
	go func() { // owned by the test: ends when the write returns, joined below
		_, err := client.Write(pattern(0, size))
		written <- err
	}()
	head := receive(t, server, 0, first, 10*time.Second)
	slowFor := head[len(head)-1].at.Sub(begin)
	if want := (shape{bandwidth: slow}).serialise(first); slowFor < want-time.Millisecond {
		t.Errorf("%d bytes at %d B/s after %v, want at least %v", first, slow, slowFor, want)
	}
	lifted := time.Now()
	p.SetBandwidth(ToTarget, 0)
	rest := receive(t, server, first, size-first, 30*time.Second)
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	// What the link held, and what the sender still had, now go unshaped.
	if took := rest[len(rest)-1].at.Sub(lifted); took > 3*noise {
		t.Errorf("the rest took %v once the limit was lifted, want within %v (3 × noise)", took, 3*noise)
	}

	p.SetBandwidth(ToTarget, again)
	begin, samples := transfer(t, client, server, again, 10*time.Second)
	took := samples[len(samples)-1].at.Sub(begin)
	if ideal := time.Second; took < ideal-time.Millisecond || took > ideal+3*noise+ideal/20 {
		t.Errorf("%d bytes at %d B/s took %v, want about %v", again, again, took, ideal)
	}
	t.Logf("figure: link-bandwidth-change slow_ms=%.1f lifted_rest_ms=%.1f again_ms=%.1f noise_ms=%.2f",
		ms(slowFor), ms(rest[len(rest)-1].at.Sub(lifted)), ms(took), ms(noise))
}

// TestOneWayLatency gives each direction its own latency and measures
// both one-way delays (the test holds both ends, so one clock times
// them), then the round trip, which is their sum.
func TestOneWayLatency(t *testing.T) {
	const up, down = 120 * time.Millisecond, 40 * time.Millisecond
	target, accepted := pipeServer(t)
	p := newProxy(t, target)
	client, server := connect(t, p, accepted)
	noise := max(measureNoise(t, p, ToTarget, client, server, 1), measureNoise(t, p, ToClient, server, client, 1))
	p.SetOneWayLatency(ToTarget, up)
	p.SetOneWayLatency(ToClient, down)
	for range 3 {
		for _, leg := range []struct {
			dir      Direction
			from, to net.Conn
			want     time.Duration
		}{{ToTarget, client, server, up}, {ToClient, server, client, down}} {
			begin, samples := transfer(t, leg.from, leg.to, 100, 5*time.Second)
			if d := samples[len(samples)-1].at.Sub(begin); d < leg.want || d > leg.want+3*noise {
				t.Errorf("%s took %v, want %v within +%v", leg.dir, d, leg.want, 3*noise)
			}
		}
	}
	// A round trip: the target's side echoes what it reads.
	begin := time.Now()
	if _, err := client.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	for _, c := range []net.Conn{server, client} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if c == server {
			if _, err := server.Write(got); err != nil {
				t.Fatal(err)
			}
		}
	}
	rtt := time.Since(begin)
	if rtt < up+down || rtt > up+down+6*noise {
		t.Errorf("round trip %v, want %v within +%v", rtt, up+down, 6*noise)
	}
	t.Logf("figure: link-latency up_ms=%.0f down_ms=%.0f rtt_ms=%.1f noise_ms=%.2f", ms(up), ms(down), ms(rtt), ms(noise))
}

// TestStallEndsEarly holds bytes in a long stall, in one direction or
// both, and ends it early, by Restore or by a Stall of zero: what was held
// arrives, in order, and a direction not stalled flows meanwhile.
func TestStallEndsEarly(t *testing.T) {
	for _, dir := range []Direction{ToTarget, ToClient, Both} {
		for _, end := range []struct {
			name string
			f    func(p *Proxy, dir Direction)
		}{
			{"Restore", func(p *Proxy, _ Direction) { p.Restore() }},
			{"Stall 0", func(p *Proxy, dir Direction) { p.Stall(dir, 0) }},
		} {
			t.Run(dir.String()+" by "+end.name, func(t *testing.T) {
				target, accepted := pipeServer(t)
				p := newProxy(t, target)
				client, server := connect(t, p, accepted)
				p.Stall(dir, time.Hour)
				for _, d := range []Direction{ToTarget, ToClient} {
					from, to := ends(d, client, server)
					if _, err := from.Write(pattern(0, 1000)); err != nil {
						t.Fatal(err)
					}
					if dir&d == 0 {
						receive(t, to, 0, 1000, 5*time.Second) // not stalled: flows now
						continue
					}
					ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
					err := p.WaitHeld(ctx, d)
					cancel()
					if err != nil {
						t.Fatalf("WaitHeld(%s): %v", d, err)
					}
				}
				if got := p.Held(dir); got == 0 || got > 1000*len(dirIndexes(dir)) {
					t.Errorf("Held(%s) = %d, want 1 to %d", dir, got, 1000*len(dirIndexes(dir)))
				}
				end.f(p, dir)
				for _, d := range []Direction{ToTarget, ToClient} {
					if dir&d != 0 {
						_, to := ends(d, client, server)
						receive(t, to, 0, 1000, 5*time.Second)
					}
				}
			})
		}
	}
}

// TestBackpressureBoundsHeldBytes stalls a direction and writes into it
// until the writes block: the proxy reads up to MaxHeld and no further,
// so the sender is held back by its socket buffers, as behind a real
// link; once the stall ends everything written arrives, in order.
func TestBackpressureBoundsHeldBytes(t *testing.T) {
	const limit = 256 << 20 // never reached when the proxy pushes back
	target, accepted := pipeServer(t)
	p := newProxy(t, target)
	client, server := connect(t, p, accepted)
	p.Stall(ToTarget, time.Hour)

	// A write that cannot finish within a second is blocked: how long
	// to watch is the one thing a test cannot measure.
	client.SetWriteDeadline(time.Now().Add(time.Second))
	written := 0
	for written < limit {
		n, err := client.Write(pattern(written, 64<<10))
		written += n
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if written >= limit {
		t.Fatalf("%d bytes written into a stalled link without blocking", written)
	}
	held, peak := p.Held(ToTarget), peakHeld(p, ToTarget)
	if held <= MaxHeld-linkChunk || peak > MaxHeld {
		t.Errorf("held %d bytes (at most %d), want over %d and at most MaxHeld %d", held, peak, MaxHeld-linkChunk, MaxHeld)
	}
	p.Restore()
	receive(t, server, 0, written, 30*time.Second)
	t.Logf("figure: link-backpressure written_before_blocking=%d held=%d peak=%d", written, held, peak)
}

// TestSetBufferShrinksThePath: with SetBuffer, the proxy holds at most
// that much in the direction, and asks for a small receive buffer on new
// connections, so that a sender whose own send buffer is small, as a
// device's on a slow path is, blocks after a small multiple of it rather
// than after the megabytes loopback buffers take
// (TestBackpressureBoundsHeldBytes).
func TestSetBufferShrinksThePath(t *testing.T) {
	const buffer = 32 << 10
	target, accepted := pipeServer(t)
	p := newProxy(t, target)
	p.SetBuffer(ToTarget, buffer)
	client, server := connect(t, p, accepted)
	if err := client.(*net.TCPConn).SetWriteBuffer(buffer); err != nil {
		t.Fatal(err)
	}
	p.Stall(ToTarget, time.Hour)

	client.SetWriteDeadline(time.Now().Add(time.Second))
	written := 0
	for written < 64<<20 {
		n, err := client.Write(pattern(written, 16<<10))
		written += n
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if held, peak := p.Held(ToTarget), peakHeld(p, ToTarget); peak > buffer || held == 0 {
		t.Errorf("held %d bytes (at most %d), want some and at most %d", held, peak, buffer)
	}
	if written > 16*buffer {
		t.Errorf("%d bytes written before blocking; want a small multiple of %d", written, buffer)
	}
	p.Restore()
	receive(t, server, 0, written, 30*time.Second)
	t.Logf("figure: link-set-buffer buffer=%d written_before_blocking=%d", buffer, written)
}
