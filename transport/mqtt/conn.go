package mqtt

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/directmethods/iotdevice/internal/busy"
	"github.com/directmethods/iotdevice/internal/mqttsession"
	"github.com/directmethods/iotdevice/internal/mqttwire"
	"github.com/directmethods/iotdevice/transport"
	"github.com/directmethods/iotdevice/transport/internal/inbox"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// conn is one MQTT session carrying method requests. It implements
// transport.Conn and transport.Quiescer on an mqttsession.Session, which
// reads the connection in order on one goroutine and hands each PUBLISH to
// onPublish: a request is queued in the inbox before anything the hub sent
// after it is seen. Answers are written by the goroutine that calls
// Respond.
type conn struct {
	s          *mqttsession.Session
	log        *slog.Logger
	inbox      *inbox.Inbox // requests for Receive; the connection's end as Receive and Respond see it
	answerQoS  byte         // 1, or 0 with Options.AnswerAtMostOnce
	answerLost func(req *transport.MethodRequest, status int, err error)
	recentQoS1 recentIDs // request ids of QoS 1 requests; the reader's own
	closeOnce  sync.Once
}

var (
	_ transport.Conn        = (*conn)(nil)
	_ transport.EndNotifier = (*conn)(nil)
	_ transport.Quiescer    = (*conn)(nil)
)

// answered is what an answer awaiting its PUBACK keeps, to be reported
// if the PUBACK does not come: not the request's payload.
type answered struct {
	req    transport.MethodRequest
	status int
}

// startConn runs the session of a connection whose CONNACK br has read.
func startConn(nc net.Conn, br *bufio.Reader, cfg *transport.Config, opts *Options) *conn {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &conn{
		log:        logger.With("transport", "mqtt"), // the client's logger names the identity
		inbox:      inbox.New("mqtt", opts.QueueSize, opts.QueueBytes),
		answerQoS:  answerQoS(opts),
		answerLost: cfg.AnswerLost,
	}
	keep := keepAlive(cfg.KeepAlive)
	timeout := opts.PingTimeout
	if timeout <= 0 {
		timeout = keep
	}
	c.s = mqttsession.Start(nc, br, mqttsession.Config{
		KeepAlive:        keep,
		PingTimeout:      timeout,
		Logger:           c.log,
		OnPublish:        c.onPublish,
		OnFail:           c.fail,
		OnUnacknowledged: c.unacknowledged,
	})
	return c
}

// answerQoS is the QoS answers are published at.
func answerQoS(opts *Options) byte {
	if opts.AnswerAtMostOnce {
		return 0
	}
	return 1
}

// Done returns a channel closed once the connection is lost or closed.
func (c *conn) Done() <-chan struct{} { return c.inbox.Done() }

// Receive returns the next method request. Requests already buffered are
// returned first, even once the connection is lost or closed; after Close,
// only once the reader has stopped, so that none is left behind.
func (c *conn) Receive(ctx context.Context) (*transport.MethodRequest, error) {
	return c.inbox.Receive(ctx)
}

// Respond publishes the response and returns once it is written. At QoS 1
// its PUBACK is awaited apart; an answer the hub does not acknowledge is
// reported through Config.AnswerLost.
func (c *conn) Respond(ctx context.Context, req *transport.MethodRequest, status int, payload []byte) error {
	if err := c.inbox.Err(); err != nil {
		return fmt.Errorf("mqtt: respond: %w", err)
	}
	topic := string(mqttwire.AppendResponseTopic(make([]byte, 0, 64), status, req.RequestID))
	var token any
	if c.answerQoS == 1 {
		token = &answered{req: transport.MethodRequest{Name: req.Name, RequestID: req.RequestID, Handle: req.Handle}, status: status}
	}
	if err := c.s.Publish(ctx, topic, c.answerQoS, payload, token); err != nil {
		return fmt.Errorf("mqtt: respond: %w", c.publishError(ctx, err))
	}
	if c.log.Enabled(ctx, slog.LevelDebug) { // spare the arguments' allocations otherwise
		c.log.Debug("mqtt: method response sent", "method", req.Name, "request_id", req.RequestID, "status", status)
	}
	return nil
}

// publishError is what Respond reports for a failed publish: ctx's error
// when the answer never went out because ctx ended, else the connection's
// end as Receive sees it, which wraps transport.ErrConnLost or
// net.ErrClosed.
func (c *conn) publishError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
		return err
	}
	if end := c.inbox.Err(); end != nil {
		return end
	}
	return fmt.Errorf("%w: %w", transport.ErrConnLost, err)
}

// unacknowledged reports an answer the hub did not acknowledge.
func (c *conn) unacknowledged(token any, err error) {
	a := token.(*answered)
	if c.answerLost == nil {
		return
	}
	if c.inbox.Err() == nil { // given up while the connection lives
		c.log.Warn("mqtt: answer not acknowledged; giving up on its PUBACK", "method", a.req.Name, "request_id", a.req.RequestID, "status", a.status)
	}
	c.answerLost(&a.req, a.status, err)
}

// Quiesce unsubscribes from method requests and waits for the UNSUBACK.
// The hub delivers no request after it, and the reader has queued every
// request the hub sent before it (one ordered stream, read by one
// goroutine, which quiesces the inbox as it reads the UNSUBACK), so a
// connection quiesced before a deliberate close, such as a reconnection to
// renew the token, loses no request in flight; Receive still returns them.
// An UNSUBACK that comes after Quiesce gave up changes nothing.
func (c *conn) Quiesce(ctx context.Context) error {
	return c.s.Unsubscribe(ctx, mqttwire.MethodsFilter, c.inbox.Quiesce)
}

// subscribe subscribes to method requests at QoS 0 and waits for the
// SUBACK.
func (c *conn) subscribe(ctx context.Context) error {
	code, err := c.s.Subscribe(ctx, mqttwire.MethodsFilter, 0)
	if err != nil {
		return err
	}
	if code == subackFailure {
		return fmt.Errorf("mqtt: subscription to %s refused", mqttwire.MethodsFilter)
	}
	return nil
}

// subackFailure is the SUBACK return code of a refused subscription.
const subackFailure = 0x80

// onPublish queues a method request, or answers 503 when the queue is
// full or quiesced; it runs on the session's reader. A QoS 1 message is
// acknowledged only when it is a method request: one on a topic the
// device never subscribed to (a cloud-to-device message an earlier
// client's session asked for, say) stays unacknowledged, so that the hub
// keeps it for a client that wants it. A QoS 1 request whose id this
// connection has seen already (a redelivery) is acknowledged again, and
// not run again.
func (c *conn) onPublish(p *packets.PublishPacket) (ack bool) {
	name, rid, err := mqttwire.ParseRequestTopic(p.TopicName)
	if err != nil {
		c.log.Warn("mqtt: ignoring a message on a topic the device did not subscribe to", "topic", p.TopicName, "qos", p.Qos, "err", err)
		return false
	}
	if p.Qos == 1 && !c.recentQoS1.add(rid) {
		c.log.Warn("mqtt: request delivered again; not run again", "method", name, "request_id", rid)
		return true
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
		c.s.Post(answer) // at QoS 0: nothing waits for it
		return true
	}
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug("mqtt: method request received", "method", name, "request_id", rid)
	}
	return true
}

// fail ends a connection that broke: Receive drains what is buffered and
// then reports err, wrapped in transport.ErrConnLost.
func (c *conn) fail(err error) {
	if c.inbox.Fail(fmt.Errorf("%w: %w", transport.ErrConnLost, err)) {
		c.log.Info("mqtt connection lost", "err", err)
	}
}

// Close waits up to a second for the acknowledgements of answers already
// sent, sends DISCONNECT (if still connected), closes the network
// connection and waits for the session's goroutines. It is idempotent.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		c.inbox.Close()
		c.s.Close()
		c.inbox.Stop() // the reader has stopped: no request arrives after this
		c.log.Info("mqtt disconnected")
	})
	return nil
}

// recentIDs remembers the request ids of the last QoS 1 requests of a
// connection, to recognise a redelivery. IoT Hub sends requests at QoS 0,
// so this only guards against a session that holds requests at QoS 1.
type recentIDs struct {
	ids  [64]string
	next int
}

// add records id and reports whether it is new.
func (r *recentIDs) add(id string) bool {
	for _, seen := range r.ids {
		if seen == id && id != "" {
			return false
		}
	}
	r.ids[r.next] = id
	r.next = (r.next + 1) % len(r.ids)
	return true
}
