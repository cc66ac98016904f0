package amqp

import "fmt"

// Limits we advertise: channels per connection, handles per session, and
// the session window in transfer frames.
const (
	maxChannel    = 255
	maxHandle     = 1023
	sessionWindow = 5000
	// maxLinks caps the links (so the ServeLink goroutines) of one
	// connection.
	maxLinks = 1024
)

// session is one session; all its fields are owned by the mux goroutine.
type session struct {
	c             *Conn
	localChannel  uint16
	remoteChannel uint16
	links         map[uint32]*Link // by the peer's handle, which we reuse as ours
	endSent       bool

	// Incoming transfers (section 2.5.6).
	nextIncomingID uint32
	incomingWindow uint32

	// Outgoing transfers.
	nextOutgoingID       uint32
	nextDeliveryID       uint32
	remoteIncomingWindow uint32
	unsettled            map[uint32]*sendRequest // our unsettled deliveries by delivery-id
}

// handleBegin answers a begin from the peer with our begin.
func (c *Conn) handleBegin(channel uint16, b *Begin) {
	if b.RemoteChannel != nil {
		c.fail(&Error{Condition: ErrCondNotAllowed, Description: "begin answering a begin we did not send"})
		return
	}
	if _, dup := c.sessions[channel]; dup {
		c.fail(&Error{Condition: ErrCondFramingError, Description: fmt.Sprintf("channel %d already has a session", channel)})
		return
	}
	local, ok := c.freeChannel()
	if !ok || channel > maxChannel {
		c.fail(&Error{Condition: ErrCondFramingError, Description: "channel-max exceeded"})
		return
	}
	s := &session{
		c:                    c,
		localChannel:         local,
		remoteChannel:        channel,
		links:                make(map[uint32]*Link),
		nextIncomingID:       b.NextOutgoingID,
		incomingWindow:       sessionWindow,
		remoteIncomingWindow: b.IncomingWindow,
		unsettled:            make(map[uint32]*sendRequest),
	}
	c.sessions[channel] = s
	remote := channel
	s.write(&Begin{
		RemoteChannel:  &remote,
		NextOutgoingID: s.nextOutgoingID,
		IncomingWindow: s.incomingWindow,
		OutgoingWindow: sessionWindow,
		HandleMax:      maxHandle,
	})
	c.log.Debug("amqp session begun", "channel", channel)
}

// freeChannel returns the lowest local channel not in use.
func (c *Conn) freeChannel() (uint16, bool) {
	used := make(map[uint16]bool, len(c.sessions))
	for _, s := range c.sessions {
		used[s.localChannel] = true
	}
	for ch := uint16(0); ch <= maxChannel; ch++ {
		if !used[ch] {
			return ch, true
		}
	}
	return 0, false
}

func (s *session) write(b Body) {
	s.c.write(Frame{Type: FrameTypeAMQP, Channel: s.localChannel, Body: b})
}

// handle dispatches a frame received on this session's channel.
func (s *session) handle(b Body) {
	if s.endSent {
		if _, ok := b.(*End); ok {
			delete(s.c.sessions, s.remoteChannel)
		}
		return // after our end, only the peer's end matters
	}
	switch b := b.(type) {
	case *Attach:
		s.handleAttach(b)
	case *Flow:
		s.handleFlow(b)
	case *Transfer:
		s.handleTransfer(b)
	case *Disposition:
		s.handleDisposition(b)
	case *Detach:
		s.handleDetach(b)
	case *End:
		s.write(&End{})
		s.finishLinks(&LinkError{Remote: true, Err: b.Error})
		delete(s.c.sessions, s.remoteChannel)
		s.c.log.Debug("amqp session ended by peer", "channel", s.remoteChannel)
	default:
		s.c.fail(&Error{Condition: ErrCondFramingError, Description: fmt.Sprintf("unexpected %T on a session", b)})
	}
}

// end ends the session with e because the peer broke a session rule.
func (s *session) end(e *Error) {
	s.write(&End{Error: e})
	s.endSent = true
	s.finishLinks(&LinkError{Err: e})
}

// finishLinks ends every link of the session.
func (s *session) finishLinks(err error) {
	for h, l := range s.links {
		l.finish(err)
		s.removeLink(h)
	}
	for id, req := range s.unsettled {
		req.complete(nil, err)
		delete(s.unsettled, id)
	}
}

func (s *session) handleAttach(a *Attach) {
	if a.Handle > maxHandle {
		s.end(&Error{Condition: ErrCondResourceLimitExceeded, Description: "handle-max exceeded"})
		return
	}
	if _, dup := s.links[a.Handle]; dup {
		s.end(&Error{Condition: ErrCondHandleInUse, Description: fmt.Sprintf("handle %d in use", a.Handle)})
		return
	}
	l := newLink(s, a)
	s.links[a.Handle] = l
	if s.c.linkCount >= maxLinks {
		l.refuse(&Error{Condition: ErrCondResourceLimitExceeded, Description: "too many links on this connection"})
		return
	}
	s.c.linkCount++
	l.counted = true
	s.c.log.Debug("amqp link attach", "link", a.Name, "role", l.role.String())
	s.c.runHandler(l)
}

// removeLink frees a handle once both ends have detached.
func (s *session) removeLink(handle uint32) {
	if l, ok := s.links[handle]; ok {
		delete(s.links, handle)
		if l.counted {
			s.c.linkCount--
		}
	}
}

func (s *session) link(handle uint32) (*Link, bool) {
	l, ok := s.links[handle]
	if !ok {
		s.end(&Error{Condition: ErrCondUnattachedHandle, Description: fmt.Sprintf("handle %d is not attached", handle)})
	}
	return l, ok
}

func (s *session) handleFlow(f *Flow) {
	if f.NextIncomingID != nil {
		s.remoteIncomingWindow = *f.NextIncomingID + f.IncomingWindow - s.nextOutgoingID
	} else {
		s.remoteIncomingWindow = f.IncomingWindow // before our first transfer (initial id 0)
	}
	if f.Handle != nil {
		l, ok := s.link(*f.Handle)
		if !ok {
			return
		}
		l.handleFlow(f)
	} else if f.Echo {
		s.write(s.flow())
	}
	for _, l := range s.links {
		l.pump()
	}
}

// flow returns a session-level flow with our current state.
func (s *session) flow() *Flow {
	next := s.nextIncomingID
	return &Flow{
		NextIncomingID: &next,
		IncomingWindow: s.incomingWindow,
		NextOutgoingID: s.nextOutgoingID,
		OutgoingWindow: sessionWindow,
	}
}

func (s *session) handleTransfer(t *Transfer) {
	if s.incomingWindow == 0 {
		s.end(&Error{Condition: ErrCondWindowViolation, Description: "transfer beyond the incoming window"})
		return
	}
	s.nextIncomingID++
	s.incomingWindow--
	if s.incomingWindow < sessionWindow/2 {
		s.incomingWindow = sessionWindow
		s.write(s.flow())
	}
	l, ok := s.link(t.Handle)
	if !ok {
		return
	}
	l.handleTransfer(t)
}

func (s *session) handleDisposition(d *Disposition) {
	if d.Role != RoleReceiver {
		return // the peer settling deliveries it sent: we settle on receipt
	}
	last := d.First
	if d.Last != nil {
		last = *d.Last
	}
	var settle []uint32
	for id, req := range s.unsettled {
		if id-d.First > last-d.First { // outside [first, last], modulo 2^32
			continue
		}
		if d.Settled || isOutcome(d.State) {
			req.complete(d.State, nil)
			delete(s.unsettled, id)
			if !d.Settled {
				settle = append(settle, id)
			}
		}
	}
	// A receiver in settle mode second waits for us to settle.
	for _, id := range settle {
		s.write(&Disposition{Role: RoleSender, First: id, Settled: true, State: d.State})
	}
}

func isOutcome(s DeliveryState) bool {
	switch s.(type) {
	case *Accepted, *Rejected, *Released, *Modified:
		return true
	}
	return false
}

func (s *session) handleDetach(d *Detach) {
	l, ok := s.link(d.Handle)
	if !ok {
		return
	}
	s.removeLink(d.Handle)
	if l.detachSent {
		return // the answer to our detach
	}
	s.write(&Detach{Handle: d.Handle, Closed: d.Closed})
	l.finish(&LinkError{Remote: true, Err: d.Error})
	s.c.log.Debug("amqp link detached by peer", "link", l.Name())
}
