package mqttsession

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/directmethods/iotdevice/internal/mqttwire"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

const (
	// maxAckGrace bounds how long Close waits for the PUBACKs of messages
	// already published, so that a deliberate close does not report them.
	maxAckGrace = time.Second
	// disconnectTimeout is how long Close waits for DISCONNECT to be
	// written before it closes the network connection anyway.
	disconnectTimeout = 250 * time.Millisecond
)

// errLateWrite is why Publish fails for a QoS 1 message written just as
// the connection ended: no PUBACK can come any more, and nothing else
// reports it.
var errLateWrite = errors.New("mqtt: the connection ended before the message was acknowledged")

// Config says how a Session keeps its connection and whom it tells what.
type Config struct {
	// KeepAlive is the keep-alive the CONNECT announced; a PINGREQ goes
	// once per KeepAlive.
	KeepAlive time.Duration
	// PingTimeout bounds the wait for a PINGRESP, from the moment the
	// PINGREQ is written, and each 16 KB of a write.
	PingTimeout time.Duration
	// Logger receives the session's logs; nil means none.
	Logger *slog.Logger
	// OnPublish is told of each PUBLISH from the server, in order, on the
	// reader goroutine; it must not block. For a QoS 1 message it reports
	// whether to acknowledge it: a client leaves unacknowledged what it did
	// not ask for, so that the server keeps it.
	OnPublish func(p *packets.PublishPacket) (ack bool)
	// OnFail, when set, is told once why the connection failed; not when
	// Close ends it.
	OnFail func(err error)
	// OnUnacknowledged, when set, is told of each QoS 1 publish that went
	// out and whose PUBACK did not come, with the token given to Publish:
	// given up beyond the bound, or still missing when the connection
	// ended. It runs on a goroutine of the session, never under its lock,
	// and must not block.
	OnUnacknowledged func(token any, err error)
}

// Session is one MQTT connection after its CONNACK. It never reconnects.
type Session struct {
	nc       net.Conn
	cfg      Config
	log      *slog.Logger
	w        *writer
	ping     *pinger
	ackGrace time.Duration
	reading  sync.WaitGroup // the reader and the goroutines that write for it
	closed   chan struct{}  // closed once Close has finished

	mu       sync.Mutex
	acks     acks
	closing  bool          // Close has begun
	failed   bool          // a failure has been noticed
	shut     bool          // the network connection is closed
	err      error         // why it ended
	idle     chan struct{} // made by Close to learn that no publish awaits its PUBACK
	finished chan struct{} // closed once the connection has ended
}

// Start runs a session on nc, whose CONNACK br has read (see Connect).
func Start(nc net.Conn, br *bufio.Reader, cfg Config) *Session {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Session{
		nc:       nc,
		cfg:      cfg,
		log:      cfg.Logger,
		ackGrace: min(cfg.PingTimeout, maxAckGrace),
		closed:   make(chan struct{}),
		acks:     acks{byID: make(map[uint16]*awaited)},
		finished: make(chan struct{}),
	}
	s.w = newWriter(nc, cfg.PingTimeout, func(err error) { s.fail(fmt.Errorf("write: %w", err)) })
	s.ping = startPinger(cfg.KeepAlive, cfg.PingTimeout, s.sendPing, s.fail)
	s.reading.Go(func() { s.readLoop(br) }) // owned by s; ends when the connection ends; joined by Close
	return s
}

// Done returns a channel closed once the connection has ended: failed or
// closed.
func (s *Session) Done() <-chan struct{} { return s.finished }

// Err returns why the connection ended: net.ErrClosed after Close, the
// failure otherwise; nil while it lives.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Subscribe subscribes to filter at qos and returns the SUBACK's return
// code (0x80: refused).
func (s *Session) Subscribe(ctx context.Context, filter string, qos byte) (byte, error) {
	p := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
	p.Topics, p.Qoss = []string{filter}, []byte{qos}
	ack, err := s.exchange(ctx, p, &p.MessageID, packets.Suback, nil)
	if err != nil {
		return 0, fmt.Errorf("mqtt: subscribe: %w", err)
	}
	codes := ack.(*packets.SubackPacket).ReturnCodes
	if len(codes) != 1 {
		return 0, fmt.Errorf("mqtt: subscribe: %w: SUBACK with %d return codes for 1 filter", mqttwire.ErrMalformedPacket, len(codes))
	}
	return codes[0], nil
}

// Unsubscribe unsubscribes from filter and waits for the UNSUBACK. onAck,
// when not nil, runs on the reader as the UNSUBACK is read, before any
// packet the server sent after it; not at all if ctx ended first.
func (s *Session) Unsubscribe(ctx context.Context, filter string, onAck func()) error {
	p := packets.NewControlPacket(packets.Unsubscribe).(*packets.UnsubscribePacket)
	p.Topics = []string{filter}
	if _, err := s.exchange(ctx, p, &p.MessageID, packets.Unsuback, onAck); err != nil {
		return fmt.Errorf("mqtt: unsubscribe: %w", err)
	}
	return nil
}

// Publish publishes payload on topic and returns once it is written. At
// QoS 1 its PUBACK is awaited apart; if none comes, OnUnacknowledged is
// told token. If ctx ends before the message could go out, it is not sent
// and Publish returns ctx's error.
func (s *Session) Publish(ctx context.Context, topic string, qos byte, payload []byte, token any) error {
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.TopicName, p.Qos, p.Payload = topic, qos, payload
	if qos > 0 {
		s.mu.Lock()
		if err := s.usableLocked(); err != nil {
			s.mu.Unlock()
			return err
		}
		var evicted *awaited
		if s.acks.published >= MaxUnacknowledged {
			evicted = s.acks.evictOldest()
		}
		id, err := s.acks.add(&awaited{kind: packets.Puback, token: token})
		s.mu.Unlock()
		if err != nil {
			return err
		}
		if evicted != nil {
			s.unacknowledged(evicted, ErrTooManyUnacknowledged)
		}
		p.MessageID = id
	}
	err := s.w.write(ctx, p)
	if qos > 0 && !s.written(p.MessageID, err == nil) && err == nil {
		err = errLateWrite
	}
	if err != nil {
		return s.writeError(ctx, err)
	}
	return nil
}

// Post writes a packet for the reader without blocking it: the write in
// progress takes it, or a short-lived goroutine writes it. A failed write
// ends the connection; Post reports nothing.
func (s *Session) Post(p packets.ControlPacket) {
	mustFlush, err := s.w.post(p)
	if err != nil || !mustFlush {
		return
	}
	s.reading.Go(func() { _ = s.w.flush(nil) }) // owned by s; ends once the queue is written or the connection ends; joined by Close
}

// usableLocked returns why nothing can be sent any more, or nil; s.mu is
// held.
func (s *Session) usableLocked() error {
	switch {
	case s.closing:
		return net.ErrClosed
	case s.shut:
		return s.err
	}
	return nil
}

// exchange sends p, after setting *id to a free packet identifier, and
// returns the acknowledgement of type kind the server sends for it. If ctx
// ends first, a later acknowledgement is ignored and onAck does not run.
func (s *Session) exchange(ctx context.Context, p packets.ControlPacket, id *uint16, kind byte, onAck func()) (packets.ControlPacket, error) {
	got := make(chan packets.ControlPacket, 1)
	s.mu.Lock()
	if err := s.usableLocked(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	n, err := s.acks.add(&awaited{kind: kind, got: got, onAck: onAck})
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	*id = n
	if err := s.w.write(ctx, p); err != nil {
		s.mu.Lock()
		s.acks.remove(n)
		s.mu.Unlock()
		return nil, s.writeError(ctx, err)
	}
	select {
	case ack := <-got:
		return ack, nil
	case <-ctx.Done():
	case <-s.finished:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.acks.get(n); a != nil {
		a.abandoned = true // keeps the identifier until the server acknowledges it
	}
	select {
	case ack := <-got: // acknowledged meanwhile
		return ack, nil
	default:
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return nil, s.err
}

// written records whether the QoS 1 message with packet identifier id went
// out: from then on it awaits its PUBACK, and is reported if none comes.
// One that did not go out is forgotten. It reports false for a message
// that went out once the connection had ended: no PUBACK can confirm it,
// and nothing else reports it.
func (s *Session) written(id uint16, ok bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.acks.get(id)
	if a.acked || !ok || s.acks.ended {
		s.acks.remove(id)
		s.noteIdleLocked()
		return a.acked || !s.acks.ended
	}
	a.written = true
	return true
}

// unacknowledged reports a publish whose PUBACK did not come.
func (s *Session) unacknowledged(a *awaited, err error) {
	if s.cfg.OnUnacknowledged != nil {
		s.cfg.OnUnacknowledged(a.token, err)
	}
}

// sendPing writes PINGREQ, for the pinger.
func (s *Session) sendPing() error {
	return s.w.write(context.Background(), packets.NewControlPacket(packets.Pingreq))
}

// writeError turns a failed write into the caller's error: ctx's own when
// the packet never went out because ctx ended, else why the connection
// ended (the failed write has ended it).
func (s *Session) writeError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
		return err
	}
	if end := s.Err(); end != nil {
		return end
	}
	return fmt.Errorf("write: %w", err)
}

// readLoop reads packets until the connection ends, then reports the
// publishes still awaiting their PUBACK.
func (s *Session) readLoop(br *bufio.Reader) {
	defer s.reportUnacknowledged()
	for {
		p, err := mqttwire.ReadPacket(br, mqttwire.MaxPacketSize)
		if err != nil {
			s.fail(fmt.Errorf("read: %w", err))
			return
		}
		if err := s.handle(p); err != nil {
			s.fail(err)
			return
		}
	}
}

// handle acts on one packet from the server.
func (s *Session) handle(p packets.ControlPacket) error {
	switch p := p.(type) {
	case *packets.PublishPacket:
		if p.Qos > 1 {
			return fmt.Errorf("%w: PUBLISH at QoS %d", mqttwire.ErrMalformedPacket, p.Qos)
		}
		if ack := s.cfg.OnPublish(p); ack && p.Qos == 1 {
			a := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
			a.MessageID = p.MessageID
			s.Post(a)
		}
	case *packets.PubackPacket:
		s.acknowledged(packets.Puback, p.MessageID, p)
	case *packets.SubackPacket:
		s.acknowledged(packets.Suback, p.MessageID, p)
	case *packets.UnsubackPacket:
		s.acknowledged(packets.Unsuback, p.MessageID, p)
	case *packets.PingrespPacket:
		s.ping.pong()
	default:
		return fmt.Errorf("%w: unexpected %s from the server", mqttwire.ErrMalformedPacket, PacketKind(p))
	}
	return nil
}

// PacketKind names a packet's type as MQTT does: "PUBREC".
func PacketKind(p packets.ControlPacket) string {
	name := strings.TrimPrefix(fmt.Sprintf("%T", p), "*packets.")
	return strings.ToUpper(strings.TrimSuffix(name, "Packet"))
}

// acknowledged hands an acknowledgement to what awaits it. One that is not
// of the type its identifier awaits, or for an identifier nothing awaits,
// is ignored, as paho does: it cannot complete another exchange.
func (s *Session) acknowledged(kind byte, id uint16, p packets.ControlPacket) {
	s.mu.Lock()
	a := s.acks.get(id)
	if a == nil || a.kind != kind {
		s.mu.Unlock()
		s.log.Warn("mqtt: ignoring an acknowledgement nothing awaits", "packet", PacketKind(p), "packet_id", id)
		return
	}
	if kind == packets.Puback && !a.written {
		a.acked = true // Publish has not returned yet: see written
		s.mu.Unlock()
		return
	}
	s.acks.remove(id)
	s.noteIdleLocked()
	var onAck func()
	if !a.abandoned {
		onAck = a.onAck
		if a.got != nil {
			a.got <- p // cap 1, and each identifier is acknowledged once
		}
	}
	s.mu.Unlock()
	if onAck != nil {
		onAck()
	}
}

// noteIdleLocked tells a waiting Close once no publish awaits its PUBACK;
// s.mu is held.
func (s *Session) noteIdleLocked() {
	if s.acks.published == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
}

// reportUnacknowledged reports the publishes still awaiting their PUBACK,
// once the connection has ended.
func (s *Session) reportUnacknowledged() {
	s.mu.Lock()
	missing := s.acks.takeUnacknowledged()
	cause := s.err
	s.mu.Unlock()
	for _, a := range missing {
		s.unacknowledged(a, fmt.Errorf("mqtt: no PUBACK before the connection ended: %w", cause))
	}
}

// fail ends a connection that broke and tells OnFail, once, unless Close
// is ending it.
func (s *Session) fail(err error) {
	s.mu.Lock()
	closing := s.closing
	first := !closing && !s.shut && !s.failed
	s.failed = true
	s.mu.Unlock()
	if closing {
		err = net.ErrClosed // Close's own doing, such as the server closing after DISCONNECT
	}
	if first && s.cfg.OnFail != nil {
		s.cfg.OnFail(err)
	}
	s.shutDown(err)
}

// shutDown closes the network connection, which ends the reader and any
// write in progress, and makes every later write fail with cause. It is
// idempotent: the first cause stays.
func (s *Session) shutDown(cause error) {
	s.mu.Lock()
	if s.shut {
		s.mu.Unlock()
		return
	}
	s.shut, s.err = true, cause
	close(s.finished)
	if s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
	s.mu.Unlock()
	s.w.fail(cause)
	_ = s.nc.Close()
}

// Close waits a little for the PUBACKs of messages already published,
// sends DISCONNECT (if still connected), closes the network connection and
// waits for the session's goroutines. It is idempotent; a second call
// returns once the first has finished.
func (s *Session) Close() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		<-s.closed
		return nil
	}
	s.closing = true
	var idle chan struct{}
	if s.acks.published > 0 && !s.shut {
		idle = make(chan struct{})
		s.idle = idle
	}
	s.mu.Unlock()
	if idle != nil {
		t := time.NewTimer(s.ackGrace)
		select {
		case <-idle:
		case <-t.C:
		}
		t.Stop()
	}
	// Give DISCONNECT a short while to go out, then end the connection
	// anyway: a stalled link must not hold Close.
	stop := time.AfterFunc(disconnectTimeout, func() { s.shutDown(net.ErrClosed) }) // runs on its own goroutine; ends at once
	ctx, cancel := context.WithTimeout(context.Background(), disconnectTimeout)
	_ = s.w.write(ctx, packets.NewControlPacket(packets.Disconnect))
	cancel()
	stop.Stop()
	s.shutDown(net.ErrClosed)
	s.ping.stop()
	s.reading.Wait()
	close(s.closed)
	return nil
}
