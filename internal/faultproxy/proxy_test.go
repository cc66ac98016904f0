package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/internal/leakcheck"
	"github.com/google/go-cmp/cmp"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// echoServer echoes every connection until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() { // owned by the test: ends when the cleanup closes ln, joined there
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { _, _ = io.Copy(c, c); c.Close() }) // owned by the test: ends with c, joined in cleanup
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func newProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads it back within 5 s.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read back %q: %v", msg, err)
	}
	if diff := cmp.Diff(msg, string(got)); diff != "" {
		t.Fatalf("echo (-want +got):\n%s", diff)
	}
}

// expectSilence asserts that nothing arrives on c for d: the only way to
// observe that bytes are held is to wait a bounded time for them.
func expectSilence(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	n, err := c.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read during black hole = %d, %v; want a timeout", n, err)
	}
}

func TestForwardsAndCounts(t *testing.T) {
	p := newProxy(t, echoServer(t))
	c1, c2 := dial(t, p), dial(t, p)
	roundTrip(t, c1, "hello")
	roundTrip(t, c2, string(bytes.Repeat([]byte("x"), 200<<10)))
	if got := p.Accepted(); got != 2 {
		t.Errorf("Accepted = %d, want 2", got)
	}
	if got := p.Live(); got != 2 {
		t.Errorf("Live = %d, want 2", got)
	}
	if p.Port() == 0 || p.Addr() == "" {
		t.Errorf("Port %d, Addr %q", p.Port(), p.Addr())
	}
}

func TestReset(t *testing.T) {
	p := newProxy(t, echoServer(t))
	c := dial(t, p)
	roundTrip(t, c, "before")
	p.Reset()
	if got := p.Live(); got != 0 {
		t.Errorf("Live after Reset = %d, want 0", got)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("read after Reset = %v, want ECONNRESET", err)
	}
	roundTrip(t, dial(t, p), "after") // new connections still work
}

func TestBlackHoleHoldsBytesUntilRestore(t *testing.T) {
	for _, dir := range []Direction{ToTarget, ToClient, Both} {
		t.Run(dir.String(), func(t *testing.T) {
			p := newProxy(t, echoServer(t))
			c := dial(t, p)
			roundTrip(t, c, "warm")
			p.BlackHole(dir)
			if _, err := c.Write([]byte("held")); err != nil {
				t.Fatal(err)
			}
			if dir&ToTarget != 0 {
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				defer cancel()
				if err := p.WaitHeld(ctx, ToTarget); err != nil {
					t.Fatalf("WaitHeld: %v", err)
				}
			}
			expectSilence(t, c, 300*time.Millisecond)
			if got := p.Live(); got != 1 {
				t.Errorf("Live during black hole = %d, want 1: nothing is closed", got)
			}
			p.Restore()
			got := make([]byte, 4)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != "held" {
				t.Fatalf("after Restore: %q, %v", got, err)
			}
		})
	}
}

func TestBlackHoleHoldsEndOfStream(t *testing.T) {
	p := newProxy(t, echoServer(t))
	c := dial(t, p)
	roundTrip(t, c, "warm")
	p.BlackHole(ToTarget)
	c.(*net.TCPConn).CloseWrite() // the echo server must not see it yet
	expectSilence(t, c, 300*time.Millisecond)
	p.Restore()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read after Restore = %v, want EOF", err)
	}
}

func TestLatency(t *testing.T) {
	const latency = 150 * time.Millisecond
	p := newProxy(t, echoServer(t))
	c := dial(t, p)
	p.SetLatency(latency)
	begin := time.Now()
	roundTrip(t, c, "slow")
	if d := time.Since(begin); d < 2*latency {
		t.Errorf("round trip took %v, want at least %v (latency each way)", d, 2*latency)
	}
	p.SetLatency(0)
	begin = time.Now()
	roundTrip(t, c, "fast")
	if d := time.Since(begin); d >= latency {
		t.Errorf("round trip without latency took %v", d)
	}
}

func TestCutAfter(t *testing.T) {
	tests := []struct {
		dir  Direction
		n    int
		want string
	}{
		{ToTarget, 3, "hel"},
		{ToClient, 2, "he"},
		{Both, 4, "hell"},
		{ToTarget, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.dir.String(), func(t *testing.T) {
			p := newProxy(t, echoServer(t))
			c := dial(t, p)
			roundTrip(t, c, "warm")
			p.CutAfter(tt.dir, tt.n)
			if _, err := c.Write([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("bytes before the cut (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCutAfterAppliesToNewConnectionsUntilRestore(t *testing.T) {
	p := newProxy(t, echoServer(t))
	p.CutAfter(ToTarget, 1)
	c := dial(t, p)
	c.Write([]byte("ab"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := io.ReadAll(c); err != nil || string(got) != "a" {
		t.Fatalf("new connection after CutAfter: %q, %v", got, err)
	}
	p.Restore()
	roundTrip(t, dial(t, p), "whole")
}

func TestRefuse(t *testing.T) {
	p := newProxy(t, echoServer(t))
	live := dial(t, p)
	roundTrip(t, live, "before")
	p.Refuse(0)
	for range 3 {
		c := dial(t, p)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("read from a refused connection succeeded")
		}
	}
	roundTrip(t, live, "still up") // live connections are untouched
	p.Accept()
	roundTrip(t, dial(t, p), "accepted")
	if got, want := []int{p.Accepted(), p.Refused()}, []int{5, 3}; !cmp.Equal(want, got) {
		t.Errorf("Accepted, Refused = %v, want %v", got, want)
	}

	p.Refuse(time.Hour)
	c := dial(t, p)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read from a connection refused for an hour succeeded")
	}
	p.Refuse(time.Nanosecond) // a refusal that has already expired
	roundTrip(t, dial(t, p), "expired")
}

func TestUnreachableTargetClosesClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := ln.Addr().String()
	ln.Close()
	p := newProxy(t, target)
	c := dial(t, p)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read = %v, want the connection closed", err)
	}
}

func TestCloseEndsEverything(t *testing.T) {
	p, err := New(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p)
	roundTrip(t, c, "up")
	p.BlackHole(Both)
	c.Write([]byte("stuck"))
	p.Close() // must not hang on the held bytes
	p.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read after Close = %v, want the connection closed", err)
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Error("dial after Close succeeded")
	}
}
