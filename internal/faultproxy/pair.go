package faultproxy

import (
	"net"
	"sync"
)

// pair is one proxied connection: the client's side and the target's.
type pair struct {
	proxy          *Proxy
	client, server net.Conn
	links          [2]*link      // per direction (dirIndex); set before the pair is shared
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

// dirIndexes returns the indexes (dirIndex) of each direction in dir.
func dirIndexes(dir Direction) []int {
	var is []int
	for _, d := range []Direction{ToTarget, ToClient} {
		if dir&d != 0 {
			is = append(is, dirIndex(d))
		}
	}
	return is
}

// armCut arms a cut after n bytes in each direction of dir; proxy.mu is
// held.
func (pr *pair) armCut(dir Direction, n int) {
	for _, i := range dirIndexes(dir) {
		pr.cut[i] = n
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

// takeCut returns the part of chunk that may still be forwarded in dir,
// and whether the stream must end after it.
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
