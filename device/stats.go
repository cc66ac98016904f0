package device

import (
	"errors"
	"sync/atomic"
)

// Stats counts what a client could not deliver, for monitoring. Each
// event is also logged at Warn with the method name and request id.
type Stats struct {
	// AnswersLost counts answers that did not reach the hub, or that the
	// hub did not confirm: their connection ended or failed before they
	// went out or before the hub acknowledged them, they could not go out
	// by their deadline (their handler's deadline plus a second), or the
	// hub refused them. An answer is only ever sent on the connection its
	// request arrived on, so it is never sent again on the next one; the
	// caller gets 504101 (GatewayTimeout) from the hub.
	AnswersLost uint64
	// RequestsDropped counts requests whose connection ended before their
	// handler could start. Their handlers never run, since no answer could
	// be delivered; the callers get 504101 from the hub.
	RequestsDropped uint64
}

// counters are a client's Stats, updated as they happen.
type counters struct {
	answersLost     atomic.Uint64
	requestsDropped atomic.Uint64
}

func (c *counters) stats() Stats {
	return Stats{AnswersLost: c.answersLost.Load(), RequestsDropped: c.requestsDropped.Load()}
}

// errOriginClosed is why an answer is dropped when its connection has
// already been closed.
var errOriginClosed = errors.New("the connection the request arrived on has closed")
