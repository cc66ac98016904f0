package faultproxy

import (
	"net"
	"sync"
	"time"
)

// chunkSize is the most bytes forwarded in one read.
const chunkSize = 32 << 10

// pair is one proxied connection: the client's side and the target's.
type pair struct {
	proxy          *Proxy
	client, server net.Conn
	done           chan struct{} // closed by close
	closeOnce      sync.Once

	// cut holds, per direction (index dirIndex), the bytes still allowed
	// before the pair is closed, or -1 when no cut is armed. Guarded by
	// proxy.mu.
	cut [2]int
}

func dirIndex(d Direction) int {
	if d == ToClient {
		return 1
	}
	return 0
}

// armCut arms a cut after n bytes in each direction of dir; proxy.mu is
// held.
func (pr *pair) armCut(dir Direction, n int) {
	for _, d := range []Direction{ToTarget, ToClient} {
		if dir&d != 0 {
			pr.cut[dirIndex(d)] = n
		}
	}
}

// close closes both sides once; with reset, each peer gets a TCP RST
// instead of an orderly end of stream.
func (pr *pair) close(reset bool) {
	pr.closeOnce.Do(func() {
		for _, c := range []net.Conn{pr.client, pr.server} {
			if tc, ok := c.(*net.TCPConn); ok && reset {
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
		}
		close(pr.done)
		pr.proxy.mu.Lock()
		delete(pr.proxy.pairs, pr)
		pr.proxy.mu.Unlock()
	})
}

// pump copies src to dst, applying the proxy's faults for dir, until
// either side fails or the pair is closed; then it closes the pair. A cut
// instead ends only dir's stream: dst sees its end after the bytes allowed,
// and the other direction flows on until a peer closes.
func (pr *pair) pump(dir Direction, src, dst net.Conn) {
	buf := make([]byte, chunkSize)
	for {
		n, readErr := src.Read(buf)
		readAt := time.Now()
		if n > 0 {
			if !pr.delay(readAt) || !pr.waitOpen(dir) {
				pr.close(false)
				return
			}
			chunk, cutNow := pr.takeCut(dir, buf[:n])
			if len(chunk) > 0 {
				if _, err := dst.Write(chunk); err != nil {
					pr.close(false)
					return
				}
			}
			if cutNow {
				if tc, ok := dst.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
				return
			}
		}
		if readErr != nil {
			// A black hole holds the end of the stream too.
			pr.waitOpen(dir)
			pr.close(false)
			return
		}
	}
}

// delay waits until the proxy's latency has passed since readAt; false
// when the pair closed meanwhile.
func (pr *pair) delay(readAt time.Time) bool {
	for {
		pr.proxy.mu.Lock()
		wait := time.Until(readAt.Add(pr.proxy.latency))
		changed := pr.proxy.changed
		pr.proxy.mu.Unlock()
		if wait <= 0 {
			return true
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
			return true
		case <-changed: // the latency changed: recompute
			t.Stop()
		case <-pr.done:
			t.Stop()
			return false
		}
	}
}

// waitOpen waits while dir is black-holed, counting what it holds for
// WaitHeld; false when the pair closed meanwhile.
func (pr *pair) waitOpen(dir Direction) bool {
	counted := false
	defer func() {
		if counted {
			pr.proxy.update(func() { pr.proxy.held[dirIndex(dir)]-- })
		}
	}()
	for {
		pr.proxy.mu.Lock()
		held := pr.proxy.blackHole&dir != 0
		changed := pr.proxy.changed
		pr.proxy.mu.Unlock()
		if !held {
			return true
		}
		if !counted {
			counted = true
			pr.proxy.update(func() { pr.proxy.held[dirIndex(dir)]++ })
			continue // update replaced changed
		}
		select {
		case <-changed:
		case <-pr.done:
			return false
		}
	}
}

// takeCut returns the part of chunk that may still be forwarded in dir,
// and whether the pair must be closed after it.
func (pr *pair) takeCut(dir Direction, chunk []byte) ([]byte, bool) {
	pr.proxy.mu.Lock()
	defer pr.proxy.mu.Unlock()
	left := &pr.cut[dirIndex(dir)]
	if *left < 0 {
		return chunk, false
	}
	if len(chunk) < *left {
		*left -= len(chunk)
		return chunk, false
	}
	chunk = chunk[:*left]
	*left = 0
	return chunk, true
}
