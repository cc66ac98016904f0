package mqtt

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/directmethods/iotdevice/internal/busy"
	"github.com/directmethods/iotdevice/internal/mqttwire"
	"github.com/directmethods/iotdevice/transport"
	"github.com/directmethods/iotdevice/transport/internal/inbox"
	paho "github.com/eclipse/paho.mqtt.golang"
)

// conn is one MQTT connection carrying method requests. It implements
// transport.Conn.
type conn struct {
	client    paho.Client
	log       *slog.Logger
	inbox     *inbox.Inbox // requests for Receive; the connection's end
	answerQoS byte         // 1, or 0 with Options.AnswerAtMostOnce

	publishMu sync.RWMutex // held (read) while paho.Publish runs
	stopping  bool         // set by Close before paho disconnects

	closeOnce sync.Once
	released  chan struct{} // closed when paho has closed the network connection
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
		log:       logger.With("transport", "mqtt"), // the client's logger names the identity
		inbox:     inbox.New("mqtt", opts.QueueSize),
		answerQoS: answerQoS(opts),
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
	if !c.inbox.Put(req) {
		c.log.Warn("mqtt: request queue full, answering 503", "method", name, "request_id", rid, "status", busy.Status)
		// Not waiting on the token keeps this callback from blocking.
		c.publish(string(mqttwire.AppendResponseTopic(nil, busy.Status, rid)), busy.Body())
		return
	}
	if c.log.Enabled(context.Background(), slog.LevelDebug) { // spare the arguments' allocations otherwise
		c.log.Debug("mqtt: method request received", "method", name, "request_id", rid)
	}
}

// onConnectionLost runs on a goroutine of paho's when the connection fails.
func (c *conn) onConnectionLost(_ paho.Client, cause error) {
	c.inbox.Fail(fmt.Errorf("%w: %w", transport.ErrConnLost, cause))
	c.log.Info("mqtt connection lost", "err", cause)
}

// Receive returns the next method request. Requests already buffered are
// returned first, even once the connection is lost or closed; after Close,
// only once paho has stopped, so that none is left behind.
func (c *conn) Receive(ctx context.Context) (*transport.MethodRequest, error) {
	return c.inbox.Receive(ctx)
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
	if err := c.inbox.Err(); err != nil {
		return fmt.Errorf("mqtt: respond: %w", err)
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
	case <-c.inbox.Done():
		return fmt.Errorf("mqtt: respond: %w", c.inbox.Err())
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
	case <-c.inbox.Done():
		return fmt.Errorf("mqtt: unsubscribe: %w", c.inbox.Err())
	}
}

// Close disconnects and waits until paho has released the network
// connection. It is idempotent.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		c.inbox.Close()
		// No Publish may start once paho disconnects: one that passed
		// paho's connected check just before would wait 30 s on a queue
		// nobody reads any more, holding its answer back.
		c.publishMu.Lock()
		c.stopping = true
		c.publishMu.Unlock()
		c.shutdown()
		c.inbox.Stop() // paho has stopped: no request arrives after this
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
