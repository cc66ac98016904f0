package amqp

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync/atomic"
)

type linkState int

const (
	linkPending linkState = iota // attach received, handler has not decided
	linkAttached
	linkDetached
)

// Link is one link attached by the peer. Its role is ours: RoleReceiver
// when the peer sends (use Receive), RoleSender when the peer receives
// (use Send). Methods are safe for concurrent use.
type Link struct {
	s        *session
	remote   *Attach // the peer's attach; read-only
	role     Role
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{}
	err      error          // why the link ended; set before done closes
	incoming chan *Delivery // capacity LinkCredit, bounded by the credit we grant

	// Owned by the mux goroutine.
	counted       bool // counts against maxLinks
	state         linkState
	detachSent    bool
	deliveryCount uint32
	credit        uint32
	partial       *partialDelivery
	queue         []*sendRequest
	drain         bool // the receiver's drain flag
	drainPending  bool // a drain request not answered yet
	nextTag       uint64
	manualCredit  bool // AcceptWithCredit: only Grant gives credit
}

func newLink(s *session, a *Attach) *Link {
	ctx, cancel := context.WithCancel(s.c.linkCtx)
	l := &Link{
		s:      s,
		remote: a,
		role:   !a.Role,
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
	if l.role == RoleReceiver {
		l.incoming = make(chan *Delivery, s.c.opts.LinkCredit)
	}
	return l
}

// Name returns the link name chosen by the peer.
func (l *Link) Name() string { return l.remote.Name }

// Role returns our role on the link.
func (l *Link) Role() Role { return l.role }

// Address returns the address of our end of the link: the target address
// when we receive, the source address when we send.
func (l *Link) Address() string {
	if l.role == RoleReceiver {
		if l.remote.Target != nil {
			return l.remote.Target.Address
		}
		return ""
	}
	if l.remote.Source != nil {
		return l.remote.Source.Address
	}
	return ""
}

// RemoteAttach returns the peer's attach frame (source, target,
// properties, settle modes). It must not be modified.
func (l *Link) RemoteAttach() *Attach { return l.remote }

// Properties returns the properties of the peer's attach.
func (l *Link) Properties() Map { return l.remote.Properties }

// Conn returns the connection the link belongs to.
func (l *Link) Conn() *Conn { return l.s.c }

// Done is closed when the link has ended.
func (l *Link) Done() <-chan struct{} { return l.done }

// Err returns why the link ended (a *LinkError, or ErrConnClosed), or nil
// while it is attached.
func (l *Link) Err() error {
	select {
	case <-l.done:
		return l.err
	default:
		return nil
	}
}

// Accept answers the peer's attach with ours. For a link the peer sends
// on, it also grants the initial credit.
func (l *Link) Accept(ctx context.Context) error {
	return l.s.c.do(ctx, func() error {
		if l.state != linkPending {
			return l.stateErr()
		}
		l.state = linkAttached
		l.s.write(l.localAttach(false))
		if l.role == RoleReceiver {
			l.credit = l.s.c.opts.LinkCredit
			l.s.write(l.flow())
		}
		return nil
	})
}

// AcceptWithCredit is Accept for a link the peer sends on, granting credit
// messages at first (zero is allowed) and replenishing none as they
// arrive: only Grant gives more. Tests use it to play a peer that starves
// a sender.
func (l *Link) AcceptWithCredit(ctx context.Context, credit uint32) error {
	if l.role != RoleReceiver {
		return fmt.Errorf("amqp: credit on link %q where the peer receives", l.Name())
	}
	return l.s.c.do(ctx, func() error {
		if l.state != linkPending {
			return l.stateErr()
		}
		l.state = linkAttached
		l.manualCredit = true
		l.s.write(l.localAttach(false))
		l.credit = min(credit, l.s.c.opts.LinkCredit)
		l.s.write(l.flow())
		return nil
	})
}

// Grant sets the credit of a link accepted with AcceptWithCredit and
// tells the peer. The credit is capped by ConnOptions.LinkCredit less the
// messages not yet taken by Receive.
func (l *Link) Grant(ctx context.Context, credit uint32) error {
	return l.s.c.do(ctx, func() error {
		if l.state != linkAttached || l.detachSent {
			return l.stateErr()
		}
		if !l.manualCredit {
			return fmt.Errorf("amqp: grant on link %q, which was not accepted with AcceptWithCredit", l.Name())
		}
		inFlight := uint32(len(l.incoming))
		if l.partial != nil {
			inFlight++
		}
		l.credit = min(credit, l.s.c.opts.LinkCredit-inFlight)
		l.s.write(l.flow())
		return nil
	})
}

// Refuse answers the peer's attach with a null terminus and then detaches
// the link with e (for example amqp:unauthorized-access), as section
// 2.6.3 describes.
func (l *Link) Refuse(ctx context.Context, e *Error) error {
	return l.s.c.do(ctx, func() error {
		if l.state != linkPending {
			return l.stateErr()
		}
		l.refuse(e)
		return nil
	})
}

func (l *Link) refuse(e *Error) {
	l.s.write(l.localAttach(true))
	l.detach(e)
	l.s.c.log.Debug("amqp link refused", "link", l.Name(), "condition", conditionOf(e))
}

// Detach closes the link, sending e in the detach frame (nil for a clean
// detach). Detaching an ended link does nothing.
func (l *Link) Detach(ctx context.Context, e *Error) error {
	return l.s.c.do(ctx, func() error {
		switch l.state {
		case linkPending:
			l.refuse(e)
		case linkAttached:
			l.detach(e)
		}
		return nil
	})
}

func conditionOf(e *Error) string {
	if e == nil {
		return ""
	}
	return string(e.Condition)
}

func (l *Link) stateErr() error {
	if l.state == linkDetached {
		return l.err
	}
	return ErrLinkNotAttached
}

// localAttach is our attach in answer to the peer's. A refused link has a
// null terminus at our end.
func (l *Link) localAttach(refused bool) *Attach {
	a := &Attach{
		Name:          l.remote.Name,
		Handle:        l.remote.Handle,
		Role:          l.role,
		SndSettleMode: l.remote.SndSettleMode,
		RcvSettleMode: l.remote.RcvSettleMode,
		Source:        l.remote.Source,
		Target:        l.remote.Target,
	}
	if l.role == RoleReceiver {
		a.MaxMessageSize = l.s.c.opts.MaxMessageSize
		a.RcvSettleMode = ReceiverSettleFirst
		if refused {
			a.Target = nil
		}
	} else if refused {
		a.Source = nil
	}
	return a
}

// detach sends our detach and ends the link; its handle stays in use
// until the peer answers.
func (l *Link) detach(e *Error) {
	l.s.write(&Detach{Handle: l.remote.Handle, Closed: true, Error: e})
	l.detachSent = true
	l.finish(&LinkError{Err: e})
}

// finish ends the link with err: wakes every waiter and fails pending
// sends. It runs on the mux goroutine and is idempotent.
func (l *Link) finish(err error) {
	if l.state == linkDetached {
		return
	}
	l.state = linkDetached
	l.err = err
	close(l.done)
	l.cancel()
	for _, req := range l.queue {
		req.complete(nil, err)
	}
	l.queue = nil
	for id, req := range l.s.unsettled {
		if req.link == l {
			req.complete(nil, err)
			delete(l.s.unsettled, id)
		}
	}
}

// handlerReturned detaches (or refuses) the link once ServeLink returns.
func (l *Link) handlerReturned() {
	_ = l.s.c.do(context.Background(), func() error {
		switch l.state {
		case linkPending:
			l.refuse(&Error{Condition: ErrCondNotFound, Description: "no node at this address"})
		case linkAttached:
			l.detach(nil)
		}
		return nil
	})
}

// flow returns a flow frame with the session state and this link's.
func (l *Link) flow() *Flow {
	f := l.s.flow()
	h, dc, credit := l.remote.Handle, l.deliveryCount, l.credit
	f.Handle, f.DeliveryCount, f.LinkCredit, f.Drain = &h, &dc, &credit, l.drain
	return f
}

func (l *Link) handleFlow(f *Flow) {
	if l.role == RoleSender && f.LinkCredit != nil {
		var peerCount uint32 // the initial delivery count we sent is 0
		if f.DeliveryCount != nil {
			peerCount = *f.DeliveryCount
		}
		l.credit = peerCount + *f.LinkCredit - l.deliveryCount
		l.drain = f.Drain
		l.drainPending = f.Drain
	}
	if f.Echo {
		l.s.write(l.flow())
	}
}

// errantDetach detaches the link because the peer broke a link rule. A
// link not answered yet is refused, since a detach must follow our attach.
func (l *Link) errantDetach(cond Symbol, format string, args ...any) {
	e := &Error{Condition: cond, Description: fmt.Sprintf(format, args...)}
	if l.state == linkPending {
		l.refuse(e)
		return
	}
	l.detach(e)
}

// Delivery is a message received on a link. Unless the peer sent it
// settled, settle it with Accept, Reject, Release or Modify.
type Delivery struct {
	Message *Message
	ID      uint32
	Tag     []byte
	Format  uint32
	// Settled tells that the peer sent the message settled, so no
	// disposition is expected.
	Settled bool

	link *Link
	done atomic.Bool
}

// partialDelivery is a delivery whose transfers are still arriving.
type partialDelivery struct {
	id      uint32
	tag     []byte
	format  uint32
	settled bool
	payload []byte
}

func (l *Link) handleTransfer(t *Transfer) {
	if l.detachSent {
		return // in flight before the peer saw our detach
	}
	if l.role != RoleReceiver {
		l.errantDetach(ErrCondNotAllowed, "transfer on a link where the peer receives")
		return
	}
	if l.partial == nil {
		if t.DeliveryID == nil {
			l.errantDetach(ErrCondInvalidField, "first transfer without delivery-id")
			return
		}
		if l.state != linkAttached || l.credit == 0 {
			l.errantDetach(ErrCondTransferLimitExceeded, "transfer without link credit")
			return
		}
		l.credit--
		l.deliveryCount++
		var format uint32
		if t.MessageFormat != nil {
			format = *t.MessageFormat
		}
		l.partial = &partialDelivery{id: *t.DeliveryID, tag: t.DeliveryTag, format: format}
	}
	p := l.partial
	p.settled = p.settled || t.Settled
	if t.Aborted {
		l.partial = nil
		return
	}
	if uint64(len(p.payload))+uint64(len(t.Payload)) > l.s.c.opts.MaxMessageSize {
		l.partial = nil
		l.errantDetach(ErrCondMessageSizeExceeded, "message larger than %d bytes", l.s.c.opts.MaxMessageSize)
		return
	}
	p.payload = append(p.payload, t.Payload...)
	if t.More {
		return
	}
	l.partial = nil
	msg, err := UnmarshalMessage(p.payload)
	if err != nil {
		if !p.settled {
			l.s.write(&Disposition{Role: RoleReceiver, First: p.id, Settled: true,
				State: &Rejected{Error: &Error{Condition: ErrCondDecodeError, Description: err.Error()}}})
		}
		l.replenish()
		return
	}
	d := &Delivery{Message: msg, ID: p.id, Tag: p.tag, Format: p.format, Settled: p.settled, link: l}
	select {
	case l.incoming <- d:
	default: // cannot happen: credit never exceeds the free buffer
		l.errantDetach(ErrCondTransferLimitExceeded, "receive buffer full")
	}
}

// replenish tops the credit up to LinkCredit once half of it is used,
// unless Grant alone gives the link credit.
func (l *Link) replenish() {
	if l.state != linkAttached || l.detachSent || l.manualCredit {
		return
	}
	inFlight := uint32(len(l.incoming))
	if l.partial != nil {
		inFlight++
	}
	limit := l.s.c.opts.LinkCredit
	if l.credit+inFlight > limit/2 {
		return
	}
	l.credit = limit - inFlight
	l.s.write(l.flow())
}

// Receive returns the next message the peer sent on the link.
func (l *Link) Receive(ctx context.Context) (*Delivery, error) {
	if l.role != RoleReceiver {
		return nil, fmt.Errorf("amqp: receive on link %q where the peer receives", l.Name())
	}
	select {
	case d := <-l.incoming:
		_ = l.s.c.do(context.WithoutCancel(ctx), func() error { l.replenish(); return nil })
		return d, nil
	case <-l.done:
		return nil, l.err
	case <-ctx.Done():
		// The handler's context ends when the link does: report why the
		// link ended rather than the cancellation it caused.
		select {
		case <-l.done:
			return nil, l.err
		default:
		}
		return nil, ctx.Err()
	}
}

// Accept settles the delivery with the accepted outcome.
func (d *Delivery) Accept(ctx context.Context) error { return d.settle(ctx, &Accepted{}) }

// Reject settles the delivery with the rejected outcome carrying e.
func (d *Delivery) Reject(ctx context.Context, e *Error) error {
	return d.settle(ctx, &Rejected{Error: e})
}

// Release settles the delivery with the released outcome.
func (d *Delivery) Release(ctx context.Context) error { return d.settle(ctx, &Released{}) }

// Modify settles the delivery with the modified outcome.
func (d *Delivery) Modify(ctx context.Context, m *Modified) error { return d.settle(ctx, m) }

// settle sends a settled disposition with state; a delivery the peer sent
// settled, or one already settled, needs nothing.
func (d *Delivery) settle(ctx context.Context, state DeliveryState) error {
	if d.Settled || !d.done.CompareAndSwap(false, true) {
		return nil
	}
	l := d.link
	return l.s.c.do(ctx, func() error {
		if l.state != linkAttached || l.detachSent {
			return l.stateErr()
		}
		l.s.write(&Disposition{Role: RoleReceiver, First: d.ID, Settled: true, State: state})
		return nil
	})
}

// sendRequest is one Send waiting for credit, then for its outcome.
type sendRequest struct {
	ctx     context.Context
	link    *Link
	payload []byte
	result  chan sendResult // buffered 1; complete is called once
}

type sendResult struct {
	state DeliveryState
	err   error
}

func (r *sendRequest) complete(state DeliveryState, err error) {
	r.result <- sendResult{state, err}
}

// transferOverhead bounds the bytes of a frame that are not payload: the
// frame header and the transfer performative.
const transferOverhead = 128

// Send sends msg on the link, waiting with ctx for link credit. When the
// peer asked for settled deliveries (snd-settle-mode settled) the message
// goes pre-settled and Send returns once it is written, with a nil state;
// otherwise Send waits for the peer's outcome and returns it (*Accepted,
// *Rejected, *Released or *Modified). If ctx ends after the message was
// written, its outcome is unknown.
func (l *Link) Send(ctx context.Context, msg *Message) (DeliveryState, error) {
	if l.role != RoleSender {
		return nil, fmt.Errorf("amqp: send on link %q where the peer sends", l.Name())
	}
	payload, err := MarshalMessage(msg)
	if err != nil {
		return nil, err
	}
	if limit := l.remote.MaxMessageSize; limit > 0 && uint64(len(payload)) > limit {
		return nil, &Error{Condition: ErrCondMessageSizeExceeded,
			Description: fmt.Sprintf("message of %d bytes, the peer accepts %d", len(payload), limit)}
	}
	req := &sendRequest{ctx: ctx, link: l, payload: payload, result: make(chan sendResult, 1)}
	err = l.s.c.do(ctx, func() error {
		if l.state != linkAttached {
			return l.stateErr()
		}
		l.queue = append(l.queue, req)
		l.pump()
		return nil
	})
	if err != nil {
		return nil, err
	}
	select {
	case r := <-req.result:
		return r.state, r.err
	case <-ctx.Done():
		// A message still waiting for credit leaves the queue now: a peer
		// that grants none must not hold it until the link ends.
		_ = l.s.c.do(context.Background(), func() error {
			l.queue = slices.DeleteFunc(l.queue, func(q *sendRequest) bool { return q == req })
			return nil
		})
		return nil, ctx.Err()
	case <-l.s.c.muxDone:
		return nil, ErrConnClosed
	}
}

// pump writes queued messages while link credit and the peer's session
// window allow, then answers a drain request.
func (l *Link) pump() {
	if l.role != RoleSender || l.state != linkAttached {
		return
	}
	s := l.s
	chunk := int(s.c.peerMaxFrame) - transferOverhead
	for len(l.queue) > 0 && l.credit > 0 {
		req := l.queue[0]
		if err := req.ctx.Err(); err != nil {
			l.queue = l.queue[1:]
			req.complete(nil, err)
			continue
		}
		frames := max(1, (len(req.payload)+chunk-1)/chunk)
		if uint64(s.remoteIncomingWindow) < uint64(frames) {
			return // wait for the peer's flow
		}
		l.queue = l.queue[1:]
		l.transfer(req, chunk)
		if s.c.stopping {
			return
		}
	}
	// Answer a drain request once nothing is left to send, even when the
	// credit is already used up, so the receiver's drain completes.
	if l.drainPending && len(l.queue) == 0 {
		l.drainPending = false
		l.deliveryCount += l.credit
		l.credit = 0
		s.write(l.flow())
	}
}

// transfer writes one message as one or more transfer frames.
func (l *Link) transfer(req *sendRequest, chunk int) {
	s := l.s
	id := s.nextDeliveryID
	s.nextDeliveryID++
	tag := binary.BigEndian.AppendUint64(nil, l.nextTag)
	l.nextTag++
	settled := l.remote.SndSettleMode == SenderSettleSettled
	var format uint32
	payload := req.payload
	for first := true; first || len(payload) > 0; first = false {
		n := min(chunk, len(payload))
		t := &Transfer{Handle: l.remote.Handle, Payload: payload[:n], More: n < len(payload)}
		if first {
			t.DeliveryID, t.DeliveryTag, t.MessageFormat, t.Settled = &id, tag, &format, settled
		}
		payload = payload[n:]
		s.write(t)
		s.nextOutgoingID++
		s.remoteIncomingWindow--
	}
	req.payload = nil // written; an unsettled delivery keeps only its outcome
	l.credit--
	l.deliveryCount++
	if settled {
		req.complete(nil, nil)
		return
	}
	s.unsettled[id] = req
}
