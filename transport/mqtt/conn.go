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
	"sync/atomic"
	"time"

	"github.com/directmethods/iotdevice/internal/busy"
	"github.com/directmethods/iotdevice/internal/mqttwire"
	"github.com/directmethods/iotdevice/transport"
	"github.com/directmethods/iotdevice/transport/internal/inbox"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// errTooManyInFlight is returned when all 65,535 packet identifiers wait
// for an acknowledgement.
var errTooManyInFlight = errors.New("mqtt: every packet identifier is in flight")

// conn is one MQTT session carrying method requests. It implements
// transport.Conn.
//
// Two goroutines, started by Dial and joined by Close, own the network
// connection: readLoop reads packets in order and hands each request to
// the inbox, so a request is queued before anything the hub sent after it
// is seen; writeLoop writes queued packets and keeps the connection alive.
// No lock is held while either does I/O.
type conn struct {
	nc          net.Conn
	log         *slog.Logger
	inbox       *inbox.Inbox // requests for Receive; the connection's end
	answerQoS   byte         // 1, or 0 with Options.AnswerAtMostOnce
	keepAlive   time.Duration
	pingTimeout time.Duration // bounds a PINGRESP and every write

	mu      sync.Mutex
	queue   []outgoing                              // packets for writeLoop, in order
	closing bool                                    // Close has begun: nothing but DISCONNECT is queued
	acks    map[uint16]chan<- packets.ControlPacket // waiting for PUBACK, SUBACK or UNSUBACK
	nextID  uint16

	wake     chan struct{} // (cap 1) the queue has packets
	pingresp chan struct{} // (cap 1) readLoop received a PINGRESP
	lastRead atomic.Int64  // UnixNano of the last packet read

	dead     chan struct{} // closed once the connection is over: lost or closed
	deadOnce sync.Once

	wg        sync.WaitGroup // readLoop and writeLoop
	closeOnce sync.Once
}

// outgoing is a packet queued for writeLoop. written, when not nil, is
// told whether the packet reached the network (cap 1).
type outgoing struct {
	packet  packets.ControlPacket
	written chan error
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
	return &conn{
		nc:          nc,
		log:         logger.With("transport", "mqtt"), // the client's logger names the identity
		inbox:       inbox.New("mqtt", opts.QueueSize),
		answerQoS:   answerQoS(opts),
		keepAlive:   keepAlive(cfg.KeepAlive),
		pingTimeout: opts.PingTimeout,
		acks:        make(map[uint16]chan<- packets.ControlPacket),
		wake:        make(chan struct{}, 1),
		pingresp:    make(chan struct{}, 1),
		dead:        make(chan struct{}),
	}
}

// start runs the session's goroutines on the connection, whose CONNACK br
// has already read.
func (c *conn) start(br *bufio.Reader) {
	c.lastRead.Store(time.Now().UnixNano())
	c.wg.Add(2)
	go c.readLoop(br)
	go c.writeLoop()
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

// Respond publishes the response and waits for the PUBACK (QoS 1), or
// until it has been written to the network (QoS 0).
func (c *conn) Respond(ctx context.Context, req *transport.MethodRequest, status int, payload []byte) error {
	if err := c.inbox.Err(); err != nil {
		return fmt.Errorf("mqtt: respond: %w", err)
	}
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.TopicName = string(mqttwire.AppendResponseTopic(make([]byte, 0, 64), status, req.RequestID))
	p.Qos = c.answerQoS
	p.Payload = payload
	var err error
	if p.Qos == 0 {
		err = c.write(ctx, p)
	} else {
		_, err = c.exchange(ctx, p, &p.MessageID)
	}
	if err != nil {
		return fmt.Errorf("mqtt: respond: %w", err)
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
// still returns them.
func (c *conn) Quiesce(ctx context.Context) error {
	p := packets.NewControlPacket(packets.Unsubscribe).(*packets.UnsubscribePacket)
	p.Topics = []string{mqttwire.MethodsFilter}
	if _, err := c.exchange(ctx, p, &p.MessageID); err != nil {
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
	ack, err := c.exchange(ctx, p, &p.MessageID)
	if err != nil {
		return fmt.Errorf("mqtt: subscribe: %w", err)
	}
	suback, ok := ack.(*packets.SubackPacket)
	if !ok || len(suback.ReturnCodes) != 1 || suback.ReturnCodes[0] == subackFailure {
		return fmt.Errorf("mqtt: subscription to %s refused", mqttwire.MethodsFilter)
	}
	return nil
}

// subackFailure is the SUBACK return code of a refused subscription.
const subackFailure = 0x80

// exchange sends p, after setting *id to a free packet identifier, and
// returns the acknowledgement the hub sends for that identifier.
func (c *conn) exchange(ctx context.Context, p packets.ControlPacket, id *uint16) (packets.ControlPacket, error) {
	ack := make(chan packets.ControlPacket, 1)
	if err := c.awaitAck(id, ack); err != nil {
		return nil, err
	}
	if err := c.enqueue(outgoing{packet: p}); err != nil {
		return nil, err
	}
	select {
	case a := <-ack:
		return a, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.inbox.Done():
		return nil, c.inbox.Err()
	}
}

// awaitAck sets *id to a free packet identifier and registers ack to
// receive its acknowledgement. The entry stays until the acknowledgement
// arrives, even if the exchange gives up first, so the identifier is not
// reused while the hub may still acknowledge it; the connection's end
// discards them all.
func (c *conn) awaitAck(id *uint16, ack chan<- packets.ControlPacket) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return net.ErrClosed
	}
	for range 1 << 16 {
		c.nextID++
		if c.nextID == 0 {
			c.nextID = 1
		}
		if _, used := c.acks[c.nextID]; !used {
			*id = c.nextID
			c.acks[*id] = ack
			return nil
		}
	}
	return errTooManyInFlight
}

// write queues p and waits until it has been written to the network.
func (c *conn) write(ctx context.Context, p packets.ControlPacket) error {
	written := make(chan error, 1)
	if err := c.enqueue(outgoing{packet: p, written: written}); err != nil {
		return err
	}
	select {
	case err := <-written:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-c.inbox.Done():
		return c.inbox.Err()
	}
}

// enqueue queues a packet for writeLoop without waiting.
func (c *conn) enqueue(o outgoing) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return net.ErrClosed
	}
	c.queue = append(c.queue, o)
	c.mu.Unlock()
	c.signal()
	return nil
}

// signal wakes writeLoop.
func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// readLoop reads packets until the connection ends. It never blocks on
// anything but the network: requests go to the inbox, or are answered 503
// when it is full.
func (c *conn) readLoop(br *bufio.Reader) {
	defer c.wg.Done()
	for {
		p, err := mqttwire.ReadPacket(br, mqttwire.MaxPacketSize)
		if err != nil {
			c.fail(fmt.Errorf("read: %w", err))
			return
		}
		c.lastRead.Store(time.Now().UnixNano())
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
		switch p.Qos {
		case 1:
			ack := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
			ack.MessageID = p.MessageID
			_ = c.enqueue(outgoing{packet: ack}) // fails only once Close has begun
		case 2:
			// IoT Hub does not support QoS 2, and the subscription asked
			// for QoS 0.
			return fmt.Errorf("%w: PUBLISH at QoS 2", mqttwire.ErrMalformedPacket)
		}
		c.onMessage(p.TopicName, p.Payload)
	case *packets.PubackPacket:
		c.acknowledge(p.MessageID, p)
	case *packets.SubackPacket:
		c.acknowledge(p.MessageID, p)
	case *packets.UnsubackPacket:
		// Only Quiesce unsubscribes. Every request sent before the
		// UNSUBACK is queued by now, and this goroutine is the only one
		// that queues: Receive can end after them.
		c.inbox.Quiesce()
		c.acknowledge(p.MessageID, p)
	case *packets.PingrespPacket:
		select {
		case c.pingresp <- struct{}{}:
		default:
		}
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

// onMessage queues a request, or answers 503 when the queue is full or
// quiesced. The
// payload is the packet's own copy, which nothing else holds.
func (c *conn) onMessage(topic string, payload []byte) {
	name, rid, err := mqttwire.ParseRequestTopic(topic)
	if err != nil {
		c.log.Warn("mqtt: dropping message on an unexpected topic", "topic", topic, "err", err)
		return
	}
	req := &transport.MethodRequest{Name: name, RequestID: rid}
	if len(payload) > 0 {
		req.Payload = payload
	}
	if !c.inbox.Put(req) {
		c.log.Warn("mqtt: request queue full or quiesced, answering 503", "method", name, "request_id", rid, "status", busy.Status)
		p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		p.TopicName = string(mqttwire.AppendResponseTopic(nil, busy.Status, rid))
		p.Payload = busy.Body()
		_ = c.enqueue(outgoing{packet: p}) // at QoS 0: nothing waits for it
		return
	}
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug("mqtt: method request received", "method", name, "request_id", rid)
	}
}

// acknowledge hands an acknowledgement to the exchange waiting for it. One
// for an identifier nobody waits for is ignored, as paho does.
func (c *conn) acknowledge(id uint16, p packets.ControlPacket) {
	c.mu.Lock()
	ack, ok := c.acks[id]
	delete(c.acks, id)
	c.mu.Unlock()
	if ok {
		ack <- p // cap 1, and each identifier is acknowledged once
	}
}

// writeLoop writes queued packets in order, each batch flushed within the
// ping timeout, and sends PINGREQ when the connection has been silent in
// either direction for the keep-alive. It ends after writing DISCONNECT,
// or when the connection fails.
func (c *conn) writeLoop() {
	defer c.wg.Done()
	bw := bufio.NewWriterSize(c.nc, 4096)
	timer := time.NewTimer(c.keepAlive)
	defer timer.Stop()
	lastWrite := time.Now()
	var pingSent time.Time // zero when no PINGRESP is awaited
	var batch []outgoing
	for {
		select {
		case <-c.wake:
		case <-timer.C:
		case <-c.pingresp:
			pingSent = time.Time{}
		case <-c.dead:
			return
		}
		c.mu.Lock()
		batch, c.queue = c.queue, batch[:0]
		c.mu.Unlock()
		now := time.Now()
		if pingSent.IsZero() {
			lastRead := time.Unix(0, c.lastRead.Load())
			if now.Sub(lastWrite) >= c.keepAlive || now.Sub(lastRead) >= c.keepAlive {
				batch = append(batch, outgoing{packet: packets.NewControlPacket(packets.Pingreq)})
				pingSent = now
			}
		} else if now.Sub(pingSent) >= c.pingTimeout {
			c.fail(fmt.Errorf("no PINGRESP within %v", c.pingTimeout))
			return
		}
		if len(batch) > 0 {
			disconnect, err := c.flush(bw, batch)
			clear(batch) // let the payloads go
			if err != nil {
				c.fail(fmt.Errorf("write: %w", err))
				return
			}
			if disconnect {
				c.end()
				return
			}
			lastWrite = time.Now()
		}
		next := lastWrite.Add(c.keepAlive)
		if lastRead := time.Unix(0, c.lastRead.Load()).Add(c.keepAlive); lastRead.Before(next) {
			next = lastRead
		}
		if !pingSent.IsZero() {
			next = pingSent.Add(c.pingTimeout)
		}
		timer.Reset(max(time.Until(next), time.Millisecond))
	}
}

// flush writes a batch, bounded by the ping timeout, and tells each
// packet's waiter. disconnect reports that the batch ended the session.
func (c *conn) flush(bw *bufio.Writer, batch []outgoing) (disconnect bool, err error) {
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.pingTimeout))
	for _, o := range batch {
		if err == nil {
			err = o.packet.Write(bw)
		}
		if _, ok := o.packet.(*packets.DisconnectPacket); ok {
			disconnect = true
		}
	}
	if err == nil {
		err = bw.Flush()
	}
	for _, o := range batch {
		if o.written != nil {
			o.written <- err
		}
	}
	return disconnect, err
}

// fail ends a connection that broke: Receive drains what is buffered and
// then reports err, wrapped in transport.ErrConnLost.
func (c *conn) fail(err error) {
	c.mu.Lock()
	closing := c.closing // then the failure is Close's own doing
	c.mu.Unlock()
	if !closing && c.inbox.Fail(fmt.Errorf("%w: %w", transport.ErrConnLost, err)) {
		c.log.Info("mqtt connection lost", "err", err)
	}
	c.end()
}

// end stops both goroutines: it closes the network connection, which
// unblocks any read or write in progress.
func (c *conn) end() {
	c.deadOnce.Do(func() {
		close(c.dead)
		_ = c.nc.Close()
	})
}

// Close sends DISCONNECT (if still connected), closes the network
// connection and waits for the session's goroutines. It is idempotent.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		c.inbox.Close()
		c.mu.Lock()
		c.closing = true
		c.queue = append(c.queue, outgoing{packet: packets.NewControlPacket(packets.Disconnect)})
		c.mu.Unlock()
		c.signal()
		// writeLoop ends the connection once it has written DISCONNECT;
		// give it a short while, then end the connection anyway.
		t := time.AfterFunc(disconnectTimeout, c.end)
		c.wg.Wait()
		t.Stop()
		c.end()
		c.inbox.Stop() // readLoop has stopped: no request arrives after this
		c.log.Info("mqtt disconnected")
	})
	return nil
}
