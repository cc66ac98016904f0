// Package leakcheck fails a test binary that leaves goroutines behind. Use
// it from TestMain:
//
//	func TestMain(m *testing.M) { leakcheck.Main(m) }
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// settle is how long goroutines get to finish after the last test; a
// goroutine still running then is a leak.
const settle = 5 * time.Second

// Main runs the tests, then fails the binary if goroutines other than the
// runtime's and the testing package's own are still running.
func Main(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := Wait(settle); len(leaked) > 0 {
			fmt.Fprintf(os.Stderr, "leakcheck: %d goroutines leaked:\n\n%s\n", len(leaked), strings.Join(leaked, "\n\n"))
			code = 1
		}
	}
	os.Exit(code)
}

// Wait returns the stacks of unexpected goroutines still running after
// waiting up to d for them to end.
func Wait(d time.Duration) []string {
	deadline := time.Now().Add(d)
	for backoff := time.Millisecond; ; backoff = min(2*backoff, 100*time.Millisecond) {
		leaked := Running()
		if len(leaked) == 0 || time.Now().After(deadline) {
			return leaked
		}
		// Polling is the only way to watch other goroutines end.
		time.Sleep(backoff)
	}
}

// Running returns the stacks of the goroutines other than the caller's that
// are not part of the runtime or the testing package.
func Running() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	stacks := strings.Split(string(buf), "\n\n")
	var leaked []string
	for i, s := range stacks {
		if i == 0 || expected(s) { // the first stack is the caller's
			continue
		}
		leaked = append(leaked, s)
	}
	return leaked
}

func expected(stack string) bool {
	lines := strings.Split(stack, "\n")
	if len(lines) < 2 {
		return true
	}
	top := lines[1]
	for _, f := range []string{"testing.(*M).", "testing.tRunner", "testing.(*T).Run", "testing.runFuzzing",
		"os/signal.signal_recv", "os/signal.loop", "runtime.ensureSigM", "runtime.goexit"} {
		if strings.Contains(top, f) {
			return true
		}
	}
	// The testing package's own helpers (its alarm, its output pipes).
	return slices.ContainsFunc(lines, func(l string) bool {
		return strings.HasPrefix(l, "created by testing.") || strings.HasPrefix(l, "created by os/signal.")
	})
}
