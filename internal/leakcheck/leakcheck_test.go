package leakcheck

import (
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

func TestWaitSeesAndForgetsAGoroutine(t *testing.T) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // owned by this test: stopped and joined below
		defer close(done)
		<-stop
	}()
	leaked := Running()
	found := false
	for _, s := range leaked {
		if strings.Contains(s, "TestWaitSeesAndForgetsAGoroutine") {
			found = true
		}
	}
	if !found {
		t.Fatalf("Running did not report the test's goroutine; got %d stacks", len(leaked))
	}
	close(stop)
	<-done
	if left := Wait(2 * time.Second); len(left) != 0 {
		t.Fatalf("Wait reported %d goroutines after they ended:\n%s", len(left), strings.Join(left, "\n\n"))
	}
}
