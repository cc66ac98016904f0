package localhub

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/directmethods/iotdevice/internal/amqp"
	"github.com/directmethods/iotdevice/internal/amqpwire"
)

// channelCorrelationProperty pairs an identity's request and response
// links.
const channelCorrelationProperty = amqp.Symbol(amqpwire.ChannelCorrelationProperty)

// errLinkSlotTaken reports a second method link of the same role for the
// same identity and channel.
var errLinkSlotTaken = errors.New("localhub: a method link of this role is already attached")

// channelRequest is a request handed to a channel, with its call.
type channelRequest struct {
	methodRequest
	call *pendingCall
}

// methodChannelKey names a pair of method links: the identity and the
// channel-correlation-id both links carry ("" when they carry none).
type methodChannelKey struct{ identity, correlation string }

// methodChannel is one identity's pair of method links on a connection:
// requests go out on the request link (our sender), answers come back on
// the response link (our receiver). It is the router's deviceSession once
// both are attached, and ends as soon as either detaches.
type methodChannel struct {
	conn     *amqpConn
	key      methodChannelKey
	log      *slog.Logger
	requests chan channelRequest // taken by the request link's handler
	done     chan struct{}       // closed when the channel ends
	endOnce  sync.Once

	// calls numbers the requests sent on this pair of links and matches
	// the answers that come back on it. A request's correlation id is the
	// hub's prefix and its number.
	calls pendingCalls

	// Guarded by conn.mu.
	requestLink, responseLink *amqp.Link
}

// serveMethodLink serves one method link of identity: it checks the
// identity and its authorization, pairs the link and then carries
// requests or answers until the link or its partner ends.
func (c *amqpConn) serveMethodLink(ctx context.Context, l *amqp.Link, identity string) {
	log := c.log.With("identity", identity, "link", l.Name(), "role", l.Role().String())
	id, ok := c.hub.reg.lookup(identity)
	if !ok {
		log.Warn("amqp: method link refused: identity not registered")
		_ = l.Refuse(ctx, &amqp.Error{Condition: amqp.ErrCondNotFound, Description: "identity " + identity + " is not registered"})
		return
	}
	if !c.authorized(id) {
		log.Warn("amqp: method link refused: no valid token for the identity on this connection")
		_ = l.Refuse(ctx, &amqp.Error{Condition: amqp.ErrCondUnauthorizedAccess, Description: "put a token for " + identity + " on $cbs first"})
		return
	}
	key := methodChannelKey{identity: identity, correlation: channelCorrelation(l)}
	ch, complete, err := c.joinChannel(key, l)
	if err != nil {
		log.Warn("amqp: method link refused", "reason", err.Error())
		_ = l.Refuse(ctx, &amqp.Error{Condition: amqp.ErrCondResourceLocked, Description: err.Error()})
		return
	}
	defer ch.end("the paired method link detached")
	// Route before answering the attach: once the device sees both links
	// attached, a call must find it subscribed (as MQTT's SUBACK does).
	if complete {
		ch.route()
	}
	if err := l.Accept(ctx); err != nil {
		return
	}
	log.Info("amqp: method link attached")
	defer log.Info("amqp: method link detached")
	if l.Role() == amqp.RoleSender {
		ch.sendRequests(ctx, l)
	} else {
		ch.receiveResponses(ctx, l)
	}
}

// channelCorrelation returns the link's channel-correlation-id property.
func channelCorrelation(l *amqp.Link) string {
	props := l.Properties()
	for _, key := range []any{channelCorrelationProperty, string(channelCorrelationProperty)} {
		if v, ok := props.Get(key); ok {
			if s, ok := v.(string); ok {
				return s
			}
		}
	}
	return ""
}

// joinChannel puts l into the channel of key, creating the channel if
// needed, and reports whether the channel now has both links. A channel
// one of whose links has already ended is replaced by a new one.
func (c *amqpConn) joinChannel(key methodChannelKey, l *amqp.Link) (ch *methodChannel, complete bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return nil, false, amqp.ErrConnClosed
	}
	ch = c.channels[key]
	if ch != nil && (linkEnded(ch.requestLink) || linkEnded(ch.responseLink)) {
		ch = nil // ending: its handlers are on their way out
	}
	if ch == nil {
		ch = &methodChannel{
			conn:     c,
			key:      key,
			log:      c.log.With("identity", key.identity),
			requests: make(chan channelRequest),
			done:     make(chan struct{}),
		}
		c.channels[key] = ch
	}
	slot := &ch.responseLink
	if l.Role() == amqp.RoleSender {
		slot = &ch.requestLink
	}
	if *slot != nil {
		return nil, false, errLinkSlotTaken
	}
	*slot = l
	return ch, ch.requestLink != nil && ch.responseLink != nil, nil
}

func linkEnded(l *amqp.Link) bool {
	if l == nil {
		return false
	}
	select {
	case <-l.Done():
		return true
	default:
		return false
	}
}

// route makes the channel the identity's live session, subscribed to
// methods, evicting any other session of the identity.
func (ch *methodChannel) route() {
	r := ch.conn.hub.router
	identity := ch.key.identity
	previous, _ := r.attach(identity, ch, true)
	r.setSubscribed(identity, ch, true, 0)
	ch.conn.hub.twins.connected(identity, ch.modelID(), time.Now())
	if prev, ok := previous.(*methodChannel); ok && prev.conn == ch.conn {
		prev.end("replaced by new method links")
	} else if previous != nil {
		previous.drop("another connection took over the identity")
	}
	select {
	case <-ch.done: // ended while being routed
		r.detach(identity, ch)
		return
	default:
	}
	ch.log.Info("amqp: subscribed to methods", "channel", ch.key.correlation)
}

// end withdraws the channel from the router and detaches both links.
// Calls in flight through it can no longer be answered and run out their
// response timeouts. It is idempotent.
func (ch *methodChannel) end(reason string) {
	ch.endOnce.Do(func() {
		close(ch.done)
		c := ch.conn
		c.mu.Lock()
		if c.channels[ch.key] == ch {
			delete(c.channels, ch.key)
		}
		links := []*amqp.Link{ch.requestLink, ch.responseLink}
		c.mu.Unlock()
		c.hub.router.detach(ch.key.identity, ch)
		for _, l := range links {
			if l != nil { // a no-op for a link that has ended already
				_ = l.Detach(context.Background(), &amqp.Error{Condition: amqp.ErrCondDetachForced, Description: reason})
			}
		}
	})
}

// detachRequestLink detaches the link requests travel on; serving it ends
// the channel, which detaches the response link too.
func (ch *methodChannel) detachRequestLink(reason string) {
	ch.conn.mu.Lock()
	l := ch.requestLink
	ch.conn.mu.Unlock()
	if l != nil {
		_ = l.Detach(context.Background(), &amqp.Error{Condition: amqp.ErrCondDetachForced, Description: reason})
	}
}

// deliver implements deviceSession.
func (ch *methodChannel) deliver(ctx context.Context, req methodRequest) (*pendingCall, error) {
	c := ch.calls.add(ctx)
	var err error
	select {
	case ch.requests <- channelRequest{req, c}:
		return c, nil
	case <-ch.done:
		err = net.ErrClosed
	case <-ctx.Done():
		err = context.Cause(ctx)
	}
	ch.calls.remove(c)
	return nil, err
}

// forget implements deviceSession.
func (ch *methodChannel) forget(c *pendingCall) { ch.calls.remove(c) }

// drop implements deviceSession: it closes the whole connection, as the
// hub does when another connection takes over an identity.
func (ch *methodChannel) drop(reason string) {
	ch.log.Info("amqp: dropping connection", "reason", reason)
	ch.conn.closeWith(amqp.ErrCondConnectionForced, reason)
}

// sendRequests sends the requests delivered to the channel on l until
// the link ends. Each send runs on its own goroutine, so a request
// waiting for credit or its disposition holds nothing up, and it gives up
// once its call ends: a device that grants no credit holds no request
// past its caller's deadline.
func (ch *methodChannel) sendRequests(ctx context.Context, l *amqp.Link) {
	var sends sync.WaitGroup
	defer sends.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch.done:
			return
		case req := <-ch.requests:
			msg := ch.requestMessage(req)
			sends.Go(func() { // owned by this link handler: ends with the link (ctx) or the call; joined above
				sendCtx, cancel := context.WithCancel(req.call.ctx)
				defer cancel()
				stop := context.AfterFunc(ctx, cancel)
				defer stop()
				state, err := l.Send(sendCtx, msg)
				switch s := state.(type) {
				case nil:
					if err != nil {
						ch.log.Debug("amqp: method request not delivered", "method", req.name, "err", err)
					}
				case *amqp.Rejected:
					ch.log.Info("amqp: device rejected a method request", "method", req.name, "condition", rejectedCondition(s))
				}
			})
		}
	}
}

func rejectedCondition(r *amqp.Rejected) string {
	if r.Error == nil {
		return ""
	}
	return string(r.Error.Condition)
}

// requestMessage builds the message of a request: a uuid correlation id,
// the method name and one data section (zero-length without payload), as
// azure-iot-sdk-c's iothubtransportamqp_methods.c reads it.
func (ch *methodChannel) requestMessage(req channelRequest) *amqp.Message {
	payload := req.payload
	if payload == nil {
		payload = []byte{}
	}
	return &amqp.Message{
		Properties:            &amqp.Properties{CorrelationID: requestCorrelationID(ch.conn.hub.amqpRIDPrefix, req.call.n)},
		ApplicationProperties: map[string]any{amqpwire.MethodNameProperty: req.name},
		Data:                  [][]byte{payload},
	}
}

// receiveResponses hands the answers arriving on l to the calls of this
// channel. An answer the hub cannot accept is rejected, and the call it
// names ends at once.
func (ch *methodChannel) receiveResponses(ctx context.Context, l *amqp.Link) {
	for {
		d, err := l.Receive(ctx)
		if err != nil {
			return
		}
		correlationID, resp, err := parseMethodResponse(d.Message)
		n, issued := responseNumber(ch.conn.hub.amqpRIDPrefix, correlationID)
		if err != nil {
			ch.log.Warn("amqp: method response rejected", "reason", err.Error())
			if issued {
				ch.calls.resolve(n, methodResponse{err: err})
			}
			_ = d.Reject(ctx, &amqp.Error{Condition: amqp.ErrCondDecodeError, Description: err.Error()})
			continue
		}
		if !issued || !ch.calls.resolve(n, resp) {
			ch.log.Warn("amqp: response to an unknown or expired request ignored", "correlation_id", clip(fmt.Sprint(correlationID)))
		}
		_ = d.Accept(ctx)
	}
}

// parseMethodResponse reads a device's answer: its correlation id (a uuid
// or a string), IoThub-status as an integer of any width, and the data
// sections as the payload (none: a null payload). An answer the hub
// cannot accept fails with ErrInvalidResponse, still returning its
// correlation id when it has one.
func parseMethodResponse(m *amqp.Message) (correlationID any, resp methodResponse, err error) {
	if m.Properties == nil || m.Properties.CorrelationID == nil {
		return nil, methodResponse{}, fmt.Errorf("%w: no correlation-id", ErrInvalidResponse)
	}
	correlationID = m.Properties.CorrelationID
	raw, ok := applicationProperty(m, amqpwire.StatusProperty)
	if !ok {
		return correlationID, methodResponse{}, fmt.Errorf("%w: no %s property", ErrInvalidResponse, amqpwire.StatusProperty)
	}
	status, ok := integer(raw)
	if !ok {
		return correlationID, methodResponse{}, fmt.Errorf("%w: %s is %T, not an integer", ErrInvalidResponse, amqpwire.StatusProperty, raw)
	}
	size := 0
	for _, d := range m.Data {
		size += len(d)
	}
	if size > maxMethodPayload {
		return correlationID, methodResponse{}, fmt.Errorf("%w: payload of %d bytes exceeds %d", ErrInvalidResponse, size, maxMethodPayload)
	}
	var payload []byte
	for _, d := range m.Data {
		payload = append(payload, d...)
	}
	return correlationID, methodResponse{status: status, payload: payload}, nil
}

// applicationProperty looks key up exactly, then case-insensitively.
func applicationProperty(m *amqp.Message, key string) (any, bool) {
	if v, ok := m.ApplicationProperties[key]; ok {
		return v, true
	}
	for k, v := range m.ApplicationProperties {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

// integer converts any AMQP integer that fits an int32 status.
func integer(v any) (int, bool) {
	var n int64
	switch x := v.(type) {
	case int8:
		n = int64(x)
	case int16:
		n = int64(x)
	case int32:
		n = int64(x)
	case int64:
		n = x
	case uint8:
		n = int64(x)
	case uint16:
		n = int64(x)
	case uint32:
		n = int64(x)
	case uint64:
		if x > 1<<31-1 {
			return 0, false
		}
		n = int64(x)
	default:
		return 0, false
	}
	if n < -1<<31 || n > 1<<31-1 {
		return 0, false
	}
	return int(n), true
}

// requestCorrelationID is the uuid a request carries: the hub's 8-byte
// prefix followed by the request's number on its channel, so the answer
// maps back without a table.
func requestCorrelationID(prefix [8]byte, n uint64) amqp.UUID {
	var id amqp.UUID
	copy(id[:8], prefix[:])
	binary.BigEndian.PutUint64(id[8:], n)
	return id
}

// responseNumber maps a response's correlation id (a uuid, its string
// form, or 16 bytes) back to the request's number; ok is false for an id
// this hub did not issue.
func responseNumber(prefix [8]byte, correlationID any) (n uint64, ok bool) {
	var id amqp.UUID
	switch v := correlationID.(type) {
	case amqp.UUID:
		id = v
	case []byte:
		if len(v) != len(id) {
			return 0, false
		}
		copy(id[:], v)
	case string:
		if id, ok = parseUUID(v); !ok {
			return 0, false
		}
	default:
		return 0, false
	}
	if [8]byte(id[:8]) != prefix {
		return 0, false
	}
	return binary.BigEndian.Uint64(id[8:]), true
}

// parseUUID parses the canonical 8-4-4-4-12 form, in either case.
func parseUUID(s string) (amqp.UUID, bool) {
	var id amqp.UUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return id, false
	}
	digits := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	if _, err := hex.Decode(id[:], []byte(digits)); err != nil {
		return amqp.UUID{}, false
	}
	return id, true
}
