package device

import "sync"

// State is a client's connection state.
type State int

const (
	// StateConnecting: a connection attempt has started.
	StateConnecting State = iota + 1
	// StateConnected: authenticated and subscribed; methods flow.
	StateConnected
	// StateDisconnected: the connection failed or an attempt did not
	// succeed; the error says why. The client retries unless Run returns.
	StateDisconnected
	// StateClosed: Run has ended; the error is what Run returns.
	StateClosed
)

// String returns the state's name.
func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateDisconnected:
		return "disconnected"
	case StateClosed:
		return "closed"
	}
	return "unknown"
}

type stateEvent struct {
	state State
	err   error
}

// stateNotifier delivers state changes to the user's callback in order, on
// one goroutine of its own, so a slow callback never stalls the network.
type stateNotifier struct {
	callback func(State, error)

	mu      sync.Mutex
	queue   []stateEvent
	closed  bool
	wake    chan struct{} // buffered 1: there is something new
	stopped chan struct{} // closed when the goroutine ends
}

// startStateNotifier starts the delivering goroutine; stop joins it. A nil
// callback starts nothing.
func startStateNotifier(callback func(State, error)) *stateNotifier {
	n := &stateNotifier{callback: callback, wake: make(chan struct{}, 1), stopped: make(chan struct{})}
	if callback == nil {
		close(n.stopped)
		return n
	}
	go n.loop() // owned by the notifier: ends after stop, joined by stop
	return n
}

func (n *stateNotifier) emit(s State, err error) {
	if n.callback == nil {
		return
	}
	n.mu.Lock()
	if !n.closed {
		n.queue = append(n.queue, stateEvent{s, err})
	}
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// stop delivers what is queued, then ends the goroutine and waits for it.
func (n *stateNotifier) stop() {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
	<-n.stopped
}

func (n *stateNotifier) loop() {
	defer close(n.stopped)
	for range n.wake {
		n.mu.Lock()
		batch, closed := n.queue, n.closed
		n.queue = nil
		n.mu.Unlock()
		for _, e := range batch {
			n.callback(e.state, e.err)
		}
		if closed {
			return
		}
	}
}
