package mqtt

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

	"github.com/directmethods/iotdevice/internal/busy"
	"github.com/directmethods/iotdevice/internal/mqttwire"
	"github.com/directmethods/iotdevice/transport"
	"github.com/directmethods/iotdevice/transport/internal/inbox"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// conn is one MQTT session carrying method requests. It implements
// transport.Conn and transport.Quiescer.
//
// One goroutine, started by start and joined by Close, reads: readLoop
// reads packets in order and queues each request in the inbox, so a
// request is queued before anything the hub sent after it is seen. Writes
// need no goroutine: the caller writes (see writer), and the keep-alive
// runs on a timer (see pinger). The reader's own packets (acknowledgements
// of QoS 1 requests, 503 answers) are written by a short-lived goroutine
// when no write is in progress to take them, so that the reader never
// blocks on the network. No lock is held during I/O or callbacks.
type conn struct {
	nc          net.Conn
	log         *slog.Logger
	inbox       *inbox.Inbox // requests for Receive; the connection's end as Receive and Respond see it
	w           *writer
	ping        *pinger
	answerQoS   byte // 1, or 0 with Options.AnswerAtMostOnce
	answerLost  func(req *transport.MethodRequest, status int, err error)
	ackGrace    time.Duration // how long Close waits for the PUBACKs of answers sent
	recentQoS1  recentIDs     // request ids of QoS 1 requests; readLoop's own
	goroutines  sync.WaitGroup
	closingDone chan struct{} // closed once Close has finished

	mu       sync.Mutex
	acks     acks          // packet identifiers awaiting their acknowledgement
	closing  bool          // Close has begun
	shut     bool          // the network connection is closed
	answered chan struct{} // made by Close to learn that no answer awaits its PUBACK
}

var (
	_ transport.Conn     = (*conn)(nil)
	_ transport.Quiescer = (*conn)(nil)
)

func newConn(nc net.Conn, cfg *transport.Config, opts *Options) *conn {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	keep := keepAlive(cfg.KeepAlive)
	timeout := opts.PingTimeout
	if timeout <= 0 {
		timeout = keep
	}
	c := &conn{
		nc:          nc,
		log:         logger.With("transport", "mqtt"), // the client's logger names the identity
		inbox:       inbox.New("mqtt", opts.QueueSize, opts.QueueBytes),
		answerQoS:   answerQoS(opts),
		answerLost:  cfg.AnswerLost,
		ackGrace:    min(timeout, maxAckGrace),
		closingDone: make(chan struct{}),
		acks:        newAcks(),
	}
	c.w = newWriter(nc, timeout, c.writeFailed)
	c.ping = startPinger(keep, timeout, c.sendPing, c.fail)
	return c
}

// start runs the reader on the connection, whose CONNACK br has already
// read.
func (c *conn) start(br *bufio.Reader) {
	c.goroutines.Go(func() { c.readLoop(br) }) // owned by c; ends when the connection ends; joined by Close
}

// answerQoS is the QoS answers are published at.
func answerQoS(opts *Options) byte {
	if opts.AnswerAtMostOnce {
		return 0
	}
	return 1
}

// Receive returns the next method request. Requests already buffered are
// returned first, even once the connection is lost or closed; after Close,
// only once the reader has stopped, so that none is left behind.
func (c *conn) Receive(ctx context.Context) (*transport.MethodRequest, error) {
	return c.inbox.Receive(ctx)
}

// Respond publishes the response and returns once it is written. At QoS 1
// its PUBACK is awaited apart (see acks); an answer the hub does not
// acknowledge is reported through Config.AnswerLost.
func (c *conn) Respond(ctx context.Context, req *transport.MethodRequest, status int, payload []byte) error {
	if err := c.inbox.Err(); err != nil {
		return fmt.Errorf("mqtt: respond: %w", err)
	}
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.TopicName = string(mqttwire.AppendResponseTopic(make([]byte, 0, 64), status, req.RequestID))
	p.Qos = c.answerQoS
	p.Payload = payload
	if p.Qos == 1 {
		id, evicted, err := c.awaitAnswer(req, status)
		if err != nil {
			return fmt.Errorf("mqtt: respond: %w", err)
		}
		c.reportLost(evicted)
		p.MessageID = id
	}
	err := c.w.write(ctx, p)
	if p.Qos == 1 && !c.written(p.MessageID, err == nil) && err == nil {
		// The connection ended while the answer was written, and
		// reportUnacknowledged has passed it by: Respond's error says so.
		err = errEndedUnacknowledged
	}
	if err != nil {
		return fmt.Errorf("mqtt: respond: %w", c.writeError(ctx, err))
	}
	if c.log.Enabled(ctx, slog.LevelDebug) { // spare the arguments' allocations otherwise
		c.log.Debug("mqtt: method response sent", "method", req.Name, "request_id", req.RequestID, "status", status)
	}
	return nil
}

// Quiesce unsubscribes from method requests and waits for the UNSUBACK.
// The hub delivers no request after it, and readLoop has queued every
// request the hub sent before it (one ordered stream, read by one
// goroutine), so a connection quiesced before a deliberate close, such as
// a reconnection to renew the token, loses no request in flight; Receive
// still returns them. An UNSUBACK that comes after Quiesce gave up changes
// nothing.
func (c *conn) Quiesce(ctx context.Context) error {
	p := packets.NewControlPacket(packets.Unsubscribe).(*packets.UnsubscribePacket)
	p.Topics = []string{mqttwire.MethodsFilter}
	if _, err := c.exchange(ctx, p, &p.MessageID, packets.Unsuback); err != nil {
		return fmt.Errorf("mqtt: unsubscribe: %w", err)
	}
	return nil
}

// subscribe subscribes to method requests at QoS 0 and waits for the
// SUBACK.
func (c *conn) subscribe(ctx context.Context) error {
	p := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
	p.Topics = []string{mqttwire.MethodsFilter}
	p.Qoss = []byte{0}
	ack, err := c.exchange(ctx, p, &p.MessageID, packets.Suback)
	if err != nil {
		return fmt.Errorf("mqtt: subscribe: %w", err)
	}
	suback := ack.(*packets.SubackPacket)
	if len(suback.ReturnCodes) != 1 || suback.ReturnCodes[0] == subackFailure {
		return fmt.Errorf("mqtt: subscription to %s refused", mqttwire.MethodsFilter)
	}
	return nil
}

// subackFailure is the SUBACK return code of a refused subscription.
const subackFailure = 0x80

// exchange sends p, after setting *id to a free packet identifier, and
// returns the acknowledgement of type kind the hub sends for it. If ctx
// ends first, a later acknowledgement is ignored.
func (c *conn) exchange(ctx context.Context, p packets.ControlPacket, id *uint16, kind byte) (packets.ControlPacket, error) {
	got := make(chan packets.ControlPacket, 1)
	c.mu.Lock()
	if c.closing || c.shut {
		c.mu.Unlock()
		return nil, net.ErrClosed
	}
	n, err := c.acks.add(&awaited{kind: kind, got: got})
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	*id = n
	if err := c.w.write(ctx, p); err != nil {
		c.forget(n)
		return nil, c.writeError(ctx, err)
	}
	select {
	case ack := <-got:
		return ack, nil
	case <-ctx.Done():
	case <-c.inbox.Done():
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if a := c.acks.get(n); a != nil {
		a.abandoned = true // keeps the identifier until the hub acknowledges it
	}
	select {
	case ack := <-got: // acknowledged meanwhile
		return ack, nil
	default:
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return nil, c.inbox.Err()
}

// awaitAnswer takes a packet identifier for an answer at QoS 1 and records
// it as awaiting its PUBACK. Beyond maxUnacknowledged, the oldest answer
// is given up; awaitAnswer returns it, for reportLost.
func (c *conn) awaitAnswer(req *transport.MethodRequest, status int) (uint16, *awaited, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing || c.shut {
		return 0, nil, net.ErrClosed
	}
	var evicted *awaited
	if c.acks.answers >= maxUnacknowledged {
		evicted = c.acks.evictOldestAnswer()
	}
	id, err := c.acks.add(&awaited{kind: packets.Puback, req: req, status: status})
	return id, evicted, err
}

// errEndedUnacknowledged is why Respond fails for an answer written just
// as the connection ended: no PUBACK can come any more.
var errEndedUnacknowledged = errors.New("the connection ended before the answer was acknowledged")

// written records whether the answer with packet identifier id went out:
// from then on it awaits its PUBACK, and reportUnacknowledged reports it if
// none comes. An answer that did not go out is forgotten. It reports false
// for an answer that went out once the connection had ended: no PUBACK can
// confirm it, and nothing else reports it.
func (c *conn) written(id uint16, ok bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.acks.get(id)
	if a.acked || !ok || c.acks.ended {
		c.acks.remove(id)
		c.noteAnsweredLocked()
		return a.acked || !c.acks.ended
	}
	a.written = true
	return true
}

// forget drops the record of a packet that never went out.
func (c *conn) forget(id uint16) {
	c.mu.Lock()
	c.acks.remove(id)
	c.noteAnsweredLocked()
	c.mu.Unlock()
}

// reportLost tells Config.AnswerLost of an answer given up while the
// connection lived.
func (c *conn) reportLost(a *awaited) {
	if a == nil || c.answerLost == nil {
		return
	}
	c.log.Warn("mqtt: answer not acknowledged; giving up on its PUBACK", "method", a.req.Name, "request_id", a.req.RequestID, "status", a.status)
	c.answerLost(a.req, a.status, fmt.Errorf("mqtt: %w", errTooManyUnacknowledged))
}

// sendPing writes PINGREQ, for the pinger.
func (c *conn) sendPing() error {
	return c.w.write(context.Background(), packets.NewControlPacket(packets.Pingreq))
}

// writeError turns a failed write into Respond's or exchange's error: ctx's
// own error when the packet never went out because ctx ended, else the
// connection's end (the failed write has ended it).
func (c *conn) writeError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
		return err
	}
	if end := c.inbox.Err(); end != nil {
		return end
	}
	return fmt.Errorf("%w: write: %w", transport.ErrConnLost, err)
}

// writeFailed ends the connection when a write to the network failed.
func (c *conn) writeFailed(err error) { c.fail(fmt.Errorf("write: %w", err)) }

// readLoop reads packets until the connection ends. It never blocks on
// anything but the network: requests go to the inbox, or are answered 503
// when it is full. Once the connection has ended, it reports the answers
// still awaiting their PUBACK as lost.
func (c *conn) readLoop(br *bufio.Reader) {
	defer c.reportUnacknowledged()
	for {
		p, err := mqttwire.ReadPacket(br, mqttwire.MaxPacketSize)
		if err != nil {
			c.fail(fmt.Errorf("read: %w", err))
			return
		}
		if err := c.handle(p); err != nil {
			c.fail(err)
			return
		}
	}
}

// handle acts on one packet from the hub.
func (c *conn) handle(p packets.ControlPacket) error {
	switch p := p.(type) {
	case *packets.PublishPacket:
		return c.onPublish(p)
	case *packets.PubackPacket:
		c.acknowledged(packets.Puback, p.MessageID, p)
	case *packets.SubackPacket:
		c.acknowledged(packets.Suback, p.MessageID, p)
	case *packets.UnsubackPacket:
		c.acknowledged(packets.Unsuback, p.MessageID, p)
	case *packets.PingrespPacket:
		c.ping.pong()
	default:
		return fmt.Errorf("%w: unexpected %s from the hub", mqttwire.ErrMalformedPacket, packetKind(p))
	}
	return nil
}

// packetKind names a packet's type as MQTT does: "PUBREC".
func packetKind(p packets.ControlPacket) string {
	name := strings.TrimPrefix(fmt.Sprintf("%T", p), "*packets.")
	return strings.ToUpper(strings.TrimSuffix(name, "Packet"))
}

// onPublish queues a method request, or answers 503 when the queue is
// full or quiesced. A QoS 1 message is acknowledged only when it is a
// method request: one on a topic the device never subscribed to (a
// cloud-to-device message an earlier client's session asked for, say)
// stays unacknowledged, so that the hub keeps it for a client that wants
// it. A QoS 1 request whose id this connection has seen already (a
// redelivery) is acknowledged again, and not run again.
func (c *conn) onPublish(p *packets.PublishPacket) error {
	if p.Qos > 1 {
		// IoT Hub does not support QoS 2, and the subscription asked for
		// QoS 0.
		return fmt.Errorf("%w: PUBLISH at QoS %d", mqttwire.ErrMalformedPacket, p.Qos)
	}
	name, rid, err := mqttwire.ParseRequestTopic(p.TopicName)
	if err != nil {
		c.log.Warn("mqtt: ignoring a message on a topic the device did not subscribe to", "topic", p.TopicName, "qos", p.Qos, "err", err)
		return nil
	}
	if p.Qos == 1 {
		ack := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
		ack.MessageID = p.MessageID
		c.post(ack)
		if !c.recentQoS1.add(rid) {
			c.log.Warn("mqtt: request delivered again; not run again", "method", name, "request_id", rid)
			return nil
		}
	}
	req := &transport.MethodRequest{Name: name, RequestID: rid}
	if len(p.Payload) > 0 {
		req.Payload = p.Payload // the packet's own copy, which nothing else holds
	}
	if !c.inbox.Put(req) {
		c.log.Warn("mqtt: request queue full or quiesced, answering 503", "method", name, "request_id", rid, "status", busy.Status)
		answer := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		answer.TopicName = string(mqttwire.AppendResponseTopic(nil, busy.Status, rid))
		answer.Payload = busy.Body()
		c.post(answer) // at QoS 0: nothing waits for it
		return nil
	}
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug("mqtt: method request received", "method", name, "request_id", rid)
	}
	return nil
}

// post writes a packet of the reader's without blocking it: the write in
// progress takes it, or a goroutine writes it.
func (c *conn) post(p packets.ControlPacket) {
	mustFlush, err := c.w.post(p)
	if err != nil || !mustFlush {
		return // a failed write has ended the connection already
	}
	c.goroutines.Go(func() { _ = c.w.flush(nil) }) // owned by c; ends once the queue is written or the connection ends; joined by Close
}

// acknowledged hands an acknowledgement to what awaits it. One that is not
// of the type its identifier awaits, or for an identifier nothing awaits,
// is ignored, as paho does: it cannot complete another exchange, and a
// stray UNSUBACK does not quiesce the connection.
func (c *conn) acknowledged(kind byte, id uint16, p packets.ControlPacket) {
	c.mu.Lock()
	a := c.acks.get(id)
	if a == nil || a.kind != kind {
		c.mu.Unlock()
		c.log.Warn("mqtt: ignoring an acknowledgement nothing awaits", "packet", packetKind(p), "packet_id", id)
		return
	}
	if a.kind == packets.Puback && !a.written {
		a.acked = true // the writer has not returned yet: see written
		c.mu.Unlock()
		return
	}
	c.acks.remove(id)
	c.noteAnsweredLocked()
	if !a.abandoned {
		if kind == packets.Unsuback {
			// Only Quiesce unsubscribes, and this goroutine is the only one
			// that queues requests: every request sent before the UNSUBACK
			// is queued by now, so Receive can end after them.
			c.inbox.Quiesce()
		}
		if a.got != nil {
			a.got <- p // cap 1, and each identifier is acknowledged once
		}
	}
	c.mu.Unlock()
}

// noteAnsweredLocked tells a waiting Close once no answer awaits its
// PUBACK; c.mu is held.
func (c *conn) noteAnsweredLocked() {
	if c.acks.answers == 0 && c.answered != nil {
		close(c.answered)
		c.answered = nil
	}
}

// reportUnacknowledged reports the answers still awaiting their PUBACK as
// lost, once the connection has ended.
func (c *conn) reportUnacknowledged() {
	c.mu.Lock()
	lost := c.acks.takeAnswers()
	c.mu.Unlock()
	if c.answerLost == nil || len(lost) == 0 {
		return
	}
	cause := fmt.Errorf("mqtt: no PUBACK before the connection ended: %w", c.inbox.Err())
	for _, a := range lost {
		c.answerLost(a.req, a.status, cause)
	}
}

// fail ends a connection that broke: Receive drains what is buffered and
// then reports err, wrapped in transport.ErrConnLost. A failure while
// Close runs is Close's own doing and is not reported.
func (c *conn) fail(err error) {
	c.mu.Lock()
	closing := c.closing
	c.mu.Unlock()
	if !closing && c.inbox.Fail(fmt.Errorf("%w: %w", transport.ErrConnLost, err)) {
		c.log.Info("mqtt connection lost", "err", err)
	}
	c.shutDown(err)
}

// shutDown closes the network connection, which ends the reader and any
// write in progress, and makes every later write fail. It is idempotent.
func (c *conn) shutDown(cause error) {
	c.mu.Lock()
	if c.shut {
		c.mu.Unlock()
		return
	}
	c.shut = true
	if c.answered != nil {
		close(c.answered)
		c.answered = nil
	}
	c.mu.Unlock()
	c.w.fail(cause)
	_ = c.nc.Close()
}

// Close waits a little for the acknowledgements of answers already sent,
// sends DISCONNECT (if still connected), closes the network connection and
// waits for the session's goroutines. It is idempotent; a second call
// returns once the first has finished.
func (c *conn) Close() error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		<-c.closingDone
		return nil
	}
	c.closing = true
	var answered chan struct{}
	if c.acks.answers > 0 && !c.shut {
		answered = make(chan struct{})
		c.answered = answered
	}
	c.mu.Unlock()
	c.inbox.Close()
	if answered != nil {
		t := time.NewTimer(c.ackGrace)
		select {
		case <-answered:
		case <-t.C:
		}
		t.Stop()
	}
	// Give DISCONNECT a short while to go out, then end the connection
	// anyway: a stalled link must not hold Close.
	stop := time.AfterFunc(disconnectTimeout, func() { c.shutDown(net.ErrClosed) }) // runs on its own goroutine; ends at once
	ctx, cancel := context.WithTimeout(context.Background(), disconnectTimeout)
	_ = c.w.write(ctx, packets.NewControlPacket(packets.Disconnect))
	cancel()
	stop.Stop()
	c.shutDown(net.ErrClosed)
	c.ping.stop()
	c.goroutines.Wait()
	c.inbox.Stop() // the reader has stopped: no request arrives after this
	c.log.Info("mqtt disconnected")
	close(c.closingDone)
	return nil
}
