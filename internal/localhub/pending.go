package localhub

import (
	"context"
	"strconv"
	"sync"
)

// pendingCalls numbers the method requests one device session sends and
// matches the session's answers to them.
//
// IoT Hub scopes request ids to a connection: the first request after
// CONNECT carries $rid=1, the next 2, and so on in hexadecimal, starting
// again on every new connection (the Azure IoT C SDK parses the rid as
// hex, iothub_client/src/iothubtransport_mqtt_common.c; device authors
// report the numbering in the discussion of nrfconnect/sdk-nrf PR #2962).
// An answer therefore only ever matches a request of its own session: an
// id from an earlier connection may name a different call on this one.
type pendingCalls struct {
	mu      sync.Mutex
	last    uint64
	waiting map[uint64]*pendingCall
}

// pendingCall is one request a session has taken for delivery and not yet
// seen answered.
type pendingCall struct {
	n   uint64 // the request's number on its session; its rid is n in hex
	rid string
	// ctx is the call's own context: done once the caller no longer waits
	// (answered, timed out or gone). A session stops trying to send the
	// request then and frees it.
	ctx context.Context
	// answer receives the device's answer, or an answer the hub rejects
	// (methodResponse.err); buffered, written at most once.
	answer chan methodResponse
}

// add registers a new call for ctx and returns it with its request id.
func (p *pendingCalls) add(ctx context.Context) *pendingCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.waiting == nil {
		p.waiting = make(map[uint64]*pendingCall)
	}
	p.last++
	c := &pendingCall{n: p.last, rid: strconv.FormatUint(p.last, 16), ctx: ctx, answer: make(chan methodResponse, 1)}
	p.waiting[c.n] = c
	return c
}

// resolve hands resp to the call numbered n, reporting false for a number
// this session never issued or whose call has ended.
func (p *pendingCalls) resolve(n uint64, resp methodResponse) bool {
	p.mu.Lock()
	c, ok := p.waiting[n]
	delete(p.waiting, n)
	p.mu.Unlock()
	if ok {
		c.answer <- resp // buffered, and the only sender: the entry is gone
	}
	return ok
}

// resolveRID is resolve for an MQTT $rid: the hexadecimal form this hub
// writes, exactly (no leading zeros, lower case), or no match.
func (p *pendingCalls) resolveRID(rid string, resp methodResponse) bool {
	n, err := strconv.ParseUint(rid, 16, 64)
	if err != nil || strconv.FormatUint(n, 16) != rid {
		return false
	}
	return p.resolve(n, resp)
}

// remove forgets c once its caller stops waiting.
func (p *pendingCalls) remove(c *pendingCall) {
	p.mu.Lock()
	delete(p.waiting, c.n)
	p.mu.Unlock()
}
