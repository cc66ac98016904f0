package mqtt

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/directmethods/iotdevice/internal/mqttwire"
	"github.com/directmethods/iotdevice/transport"
	paho "github.com/eclipse/paho.mqtt.golang"
)

// busyPayload answers requests that arrive while the queue is full.
var busyPayload = []byte(`{"error":"device busy: too many pending requests"}`)

// busyStatus is the status of that answer.
const busyStatus = 503

// conn is one MQTT connection carrying method requests. It implements
// transport.Conn.
type conn struct {
	client    paho.Client
	log       *slog.Logger
	requests  chan *transport.MethodRequest // never closed: paho may still deliver while Close runs
	answerQoS byte                          // 1, or 0 with Options.AnswerAtMostOnce

	lost     chan struct{} // closed when paho reports the connection lost
	lostOnce sync.Once
	lostErr  error // set before lost is closed

	publishMu sync.RWMutex // held (read) while paho.Publish runs
	stopping  bool         // set by Close before paho disconnects

	closed       chan struct{} // closed by Close
	closeOnce    sync.Once
	shutdownDone chan struct{} // closed by Close once paho has stopped: no request arrives after it
	released     chan struct{} // closed when paho has closed the network connection
}

var (
	_ transport.Conn     = (*conn)(nil)
	_ transport.Quiescer = (*conn)(nil)
)

func newConn(cfg *transport.Config, opts *Options) *conn {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &conn{
		log:          logger.With("transport", "mqtt"), // the client's logger names the identity
		requests:     make(chan *transport.MethodRequest, opts.QueueSize),
		answerQoS:    answerQoS(opts),
		lost:         make(chan struct{}),
		closed:       make(chan struct{}),
		shutdownDone: make(chan struct{}),
	}
}

// onMessage runs on paho's router goroutine for every PUBLISH received. It
// must not block: it parses the topic, copies the payload and queues the
// request, or answers 503 when the queue is full.
func (c *conn) onMessage(_ paho.Client, m paho.Message) {
	name, rid, err := mqttwire.ParseRequestTopic(m.Topic())
	if err != nil {
		c.log.Warn("mqtt: dropping message on an unexpected topic", "topic", m.Topic(), "err", err)
		return
	}
	req := &transport.MethodRequest{Name: name, RequestID: rid}
	if p := m.Payload(); len(p) > 0 {
		req.Payload = bytes.Clone(p)
	}
	select {
	case c.requests <- req:
		if c.log.Enabled(context.Background(), slog.LevelDebug) { // spare the arguments' allocations otherwise
			c.log.Debug("mqtt: method request received", "method", name, "request_id", rid)
		}
	default:
		c.log.Warn("mqtt: request queue full, answering 503", "method", name, "request_id", rid, "status", busyStatus)
		// Not waiting on the token keeps this callback from blocking.
		c.publish(string(mqttwire.AppendResponseTopic(nil, busyStatus, rid)), busyPayload)
	}
}

// onConnectionLost runs on a goroutine of paho's when the connection fails.
func (c *conn) onConnectionLost(_ paho.Client, cause error) {
	c.lostOnce.Do(func() {
		c.lostErr = fmt.Errorf("%w: %w", transport.ErrConnLost, cause)
		close(c.lost)
	})
	c.log.Info("mqtt connection lost", "err", cause)
}

// Receive returns the next method request. Requests already buffered are
// returned first, even once the connection is lost or closed.
func (c *conn) Receive(ctx context.Context) (*transport.MethodRequest, error) {
	select {
	case req := <-c.requests:
		return req, nil
	default:
	}
	select {
	case req := <-c.requests:
		return req, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.lost:
	case <-c.closed:
		// paho may still hand over requests while Close disconnects: wait
		// until it has stopped, so that none is left behind in the queue.
		select {
		case <-c.shutdownDone:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	// Drain what arrived before the connection ended.
	select {
	case req := <-c.requests:
		return req, nil
	default:
	}
	select {
	case <-c.closed:
		return nil, fmt.Errorf("mqtt: receive: %w", net.ErrClosed)
	default:
		return nil, fmt.Errorf("mqtt: receive: %w", c.lostErr)
	}
}

// answerQoS is the QoS answers are published at.
func answerQoS(opts *Options) byte {
	if opts.AnswerAtMostOnce {
		return 0
	}
	return 1
}

// publish hands an answer to paho, unless Close has begun (ok is false
// then).
func (c *conn) publish(topic string, payload []byte) (tok paho.Token, ok bool) {
	c.publishMu.RLock()
	defer c.publishMu.RUnlock()
	if c.stopping {
		return nil, false
	}
	return c.client.Publish(topic, c.answerQoS, false, payload), true
}

// Respond publishes the response and waits for the PUBACK (QoS 1), or
// until paho has written it (QoS 0).
func (c *conn) Respond(ctx context.Context, req *transport.MethodRequest, status int, payload []byte) error {
	select {
	case <-c.closed:
		return fmt.Errorf("mqtt: respond: %w", net.ErrClosed)
	case <-c.lost:
		return fmt.Errorf("mqtt: respond: %w", c.lostErr)
	default:
	}
	topic := string(mqttwire.AppendResponseTopic(make([]byte, 0, 64), status, req.RequestID))
	if payload == nil {
		payload = []byte{}
	}
	tok, ok := c.publish(topic, payload)
	if !ok {
		return fmt.Errorf("mqtt: respond: %w", net.ErrClosed)
	}
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("mqtt: respond: %w: %w", transport.ErrConnLost, err)
		}
		if c.log.Enabled(ctx, slog.LevelDebug) {
			c.log.Debug("mqtt: method response sent", "method", req.Name, "request_id", req.RequestID, "status", status)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.lost:
		return fmt.Errorf("mqtt: respond: %w", c.lostErr)
	case <-c.closed:
		return fmt.Errorf("mqtt: respond: %w", net.ErrClosed)
	}
}

// Quiesce unsubscribes from method requests and waits for the UNSUBACK.
// The hub delivers no request after it, and the requests it sent before
// have all arrived (one ordered stream), so a connection quiesced before a
// deliberate close, such as a reconnection to renew the token, loses no
// request in flight; Receive still returns them.
func (c *conn) Quiesce(ctx context.Context) error {
	tok := c.client.Unsubscribe(mqttwire.MethodsFilter)
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("mqtt: unsubscribe: %w: %w", transport.ErrConnLost, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mqtt: unsubscribe: %w", ctx.Err())
	case <-c.lost:
		return fmt.Errorf("mqtt: unsubscribe: %w", c.lostErr)
	case <-c.closed:
		return fmt.Errorf("mqtt: unsubscribe: %w", net.ErrClosed)
	}
}

// Close disconnects and waits until paho has released the network
// connection. It is idempotent.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		// No Publish may start once paho disconnects: one that passed
		// paho's connected check just before would wait 30 s on a queue
		// nobody reads any more, holding its answer back.
		c.publishMu.Lock()
		c.stopping = true
		c.publishMu.Unlock()
		c.shutdown()
		close(c.shutdownDone)
		c.log.Info("mqtt disconnected")
	})
	return nil
}

// shutdown sends DISCONNECT (if still connected), stops paho and waits for
// it to close the network connection.
func (c *conn) shutdown() {
	c.client.Disconnect(disconnectQuiesce)
	t := time.NewTimer(releaseTimeout)
	defer t.Stop()
	select {
	case <-c.released:
	case <-t.C:
		c.log.Warn("mqtt: network connection not released after disconnect")
	}
}
