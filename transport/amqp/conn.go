package amqp

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	goamqp "github.com/Azure/go-amqp"
	iamqp "github.com/directmethods/iotdevice/internal/amqp"
	"github.com/directmethods/iotdevice/internal/amqpwire"
	"github.com/directmethods/iotdevice/internal/busy"
	"github.com/directmethods/iotdevice/transport"
	"github.com/directmethods/iotdevice/transport/internal/inbox"
)

// conn is one AMQP connection carrying method requests. It implements
// transport.Conn and transport.TokenRefresher.
type conn struct {
	cfg  *transport.Config
	opts Options
	log  *slog.Logger

	client   *goamqp.Conn
	guard    *frameGuard // between the network and client
	channel  string      // the channel correlation id, naming the method links
	session  *goamqp.Session
	cbs      *cbsClient // nil with a certificate credential
	receiver *goamqp.Receiver
	sender   *goamqp.Sender
	answers  *answerTracker // nil with Options.AnswerAtMostOnce
	sendTurn chan struct{}  // (cap 1) held by the Respond handing its answer to go-amqp
	failed   atomic.Bool    // fail was called: requests are released, not accepted
	started  atomic.Bool    // Dial has returned the Conn

	inbox *inbox.Inbox                  // filled by pump; the connection's end
	busy  chan *transport.MethodRequest // requests to answer 503, drained by answerBusy

	lifetime context.Context // ends when Close starts; stops the goroutines
	stop     context.CancelFunc
	wg       sync.WaitGroup

	closeOnce sync.Once
}

var (
	_ transport.Conn           = (*conn)(nil)
	_ transport.EndNotifier    = (*conn)(nil)
	_ transport.TokenRefresher = (*conn)(nil)
)

func newConn(cfg *transport.Config, opts Options, client *goamqp.Conn) *conn {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	lifetime, stop := context.WithCancel(context.Background())
	return &conn{
		cfg:      cfg,
		opts:     opts,
		log:      logger.With("transport", logName(opts.Network)), // the client's logger names the identity
		client:   client,
		inbox:    inbox.New("amqp", opts.QueueSize, 0),
		busy:     make(chan *transport.MethodRequest, busyQueueSize),
		lifetime: lifetime,
		stop:     stop,
		channel:  newUUID().String(),
		sendTurn: make(chan struct{}, 1),
	}
}

// start runs the goroutines of an attached connection.
func (c *conn) start() {
	if !c.opts.AnswerAtMostOnce {
		c.answers = newAnswerTracker(c.opts.maxUnsettledAnswers, c.cfg.AnswerLost, c.log) // stopped and joined in Close
	}
	c.wg.Go(c.pump)       // owned by c; stopped by Close (c.stop) or a receive failure; joined in Close
	c.wg.Go(c.answerBusy) // owned by c; stopped by Close (c.stop); joined in Close
	c.started.Store(true)
}

// abort releases a connection whose setup failed; its goroutines never
// started.
func (c *conn) abort() {
	c.stop()
	if c.client != nil {
		_ = c.client.Close()
	}
}

// receiverName and senderName name the method links.
func (c *conn) receiverName() string { return "methods-requests-" + c.channel }
func (c *conn) senderName() string   { return "methods-responses-" + c.channel }

// guardHooks returns the hooks through which the frame guard tells c of
// what it saw.
func (c *conn) guardHooks() guardHooks {
	return guardHooks{
		watched:  []string{c.receiverName(), c.senderName()},
		detached: c.linkDetached,
		refused:  func(err error) { c.fail(fmt.Errorf("%w: %w", transport.ErrConnLost, err)) },
	}
}

// linkDetached ends the Conn when the hub detaches a method link. The
// guard calls it before go-amqp reads the detach, so that the requests
// after the detach are released rather than accepted (pump): without its
// answer link, or its request link, the Conn cannot answer them.
func (c *conn) linkDetached(name string, e *iamqp.Error) {
	if c.lifetime.Err() != nil {
		return // Close detaches the links itself
	}
	var remote *goamqp.Error
	if e != nil {
		remote = &goamqp.Error{Condition: goamqp.ErrCond(e.Condition), Description: e.Description}
	}
	c.fail(fmt.Errorf("amqp: the hub detached link %s: %w", name, linkFailure(c.lifetime, &goamqp.LinkError{RemoteErr: remote})))
}

// pump moves requests from go-amqp's receiver to the queue Receive reads.
// A malformed request is rejected with amqp:decode-error; a valid one is
// accepted once queued, or answered 503 when the queue is full. Once the
// Conn has failed, every request is released instead: it could not be
// answered, and released tells the hub that it was not acted on (AMQP 1.0
// section 3.4.4), where accepting it would leave the hub waiting for an
// answer until its time-out. It ends when Close starts or the receiver
// fails, which ends the Conn.
func (c *conn) pump() {
	for {
		msg, err := c.receiver.Receive(c.lifetime, nil)
		if err != nil {
			if c.lifetime.Err() == nil {
				c.fail(linkFailure(c.lifetime, err))
			}
			return
		}
		if c.failed.Load() {
			if err := c.receiver.ReleaseMessage(c.lifetime, msg); err != nil {
				return // the receiver has ended, or Close has begun
			}
			continue
		}
		req, err := parseRequest(msg)
		if err != nil {
			c.log.Warn("amqp: rejecting malformed method request", malformedAttrs(msg, err)...)
			rejection := &goamqp.Error{Condition: goamqp.ErrCondDecodeError, Description: err.Error()}
			if err := c.receiver.RejectMessage(c.lifetime, msg, rejection); err != nil && c.lifetime.Err() == nil {
				c.fail(linkFailure(c.lifetime, err))
				return
			}
			continue
		}
		if c.inbox.Put(req) {
			if c.log.Enabled(context.Background(), slog.LevelDebug) { // spare the arguments' allocations otherwise
				c.log.Debug("amqp: method request received", "method", req.Name, "request_id", req.RequestID)
			}
		} else {
			c.log.Warn("amqp: request queue full, answering 503", "method", req.Name, "request_id", req.RequestID, "status", busy.Status)
			select {
			case c.busy <- req:
			default:
				c.log.Warn("amqp: too many 503 answers pending, dropping request", "method", req.Name, "request_id", req.RequestID)
			}
		}
		if err := c.receiver.AcceptMessage(c.lifetime, msg); err != nil {
			if c.lifetime.Err() == nil {
				c.fail(linkFailure(c.lifetime, err))
			}
			return
		}
	}
}

// malformedAttrs returns the log attributes of a rejected request: its
// method name and request id when it has them, and the reason; never its
// payload.
func malformedAttrs(msg *goamqp.Message, err error) []any {
	attrs := make([]any, 0, 6)
	if name, ok := msg.ApplicationProperties[amqpwire.MethodNameProperty].(string); ok {
		attrs = append(attrs, "method", name)
	}
	if msg.Properties != nil {
		if id, ok := correlationIDString(msg.Properties.CorrelationID); ok {
			attrs = append(attrs, "request_id", id)
		}
	}
	return append(attrs, "err", err)
}

// answerBusy sends the 503 answers that pump queued, so that pump never
// waits for them. Each may wait busyAnswerTimeout for link credit; their
// outcomes are not reported through Config.AnswerLost.
func (c *conn) answerBusy() {
	for {
		select {
		case <-c.lifetime.Done():
			return
		case req := <-c.busy:
			ctx, cancel := context.WithTimeout(c.lifetime, busyAnswerTimeout)
			err := c.respond(ctx, req, busy.Status, busy.Body(), false)
			cancel()
			if err != nil && c.lifetime.Err() == nil {
				c.log.Warn("amqp: 503 answer not delivered", "method", req.Name, "request_id", req.RequestID, "err", err)
			}
		}
	}
}

// fail ends the Conn with err, which Receive returns once the buffered
// requests are drained. Only the first failure counts.
func (c *conn) fail(err error) {
	c.failed.Store(true)
	if c.inbox.Fail(err) && c.started.Load() {
		c.log.Info("amqp connection lost", "err", err)
	}
}

// Done returns a channel closed once the connection is lost or closed.
func (c *conn) Done() <-chan struct{} { return c.inbox.Done() }

// Receive returns the next method request. Requests already buffered are
// returned first, even once the connection is lost or closed; after Close,
// only once pump has stopped, so that none is left behind.
func (c *conn) Receive(ctx context.Context) (*transport.MethodRequest, error) {
	return c.inbox.Receive(ctx)
}

// Respond sends the response on the method sender link and returns once
// it is written: unsettled, its outcome then tracked by c.answers, or
// pre-settled with Options.AnswerAtMostOnce. An answer that cannot go out
// before ctx ends is not sent; if the link gave it no room (no credit),
// the Conn fails.
func (c *conn) Respond(ctx context.Context, req *transport.MethodRequest, status int, payload []byte) error {
	return c.respond(ctx, req, status, payload, true)
}

// respond is Respond; track says whether the answer's outcome is tracked
// and reported. The adapter's own 503 answers are not: the client never
// saw their requests.
func (c *conn) respond(ctx context.Context, req *transport.MethodRequest, status int, payload []byte, track bool) error {
	if err := c.ended(); err != nil {
		return fmt.Errorf("amqp: respond: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("amqp: respond: answer not sent: %w", err)
	}
	msg, err := newResponse(req, status, payload)
	if err != nil {
		return err
	}
	// go-amqp sends one answer at a time, but waits for its turn without
	// heeding ctx: answers take turns here instead.
	select {
	case c.sendTurn <- struct{}{}:
	case <-ctx.Done():
		return c.notSent(ctx)
	}
	var r goamqp.SendReceipt
	if err = ctx.Err(); err == nil {
		if c.opts.AnswerAtMostOnce {
			err = c.sender.Send(ctx, msg, nil)
		} else {
			r, err = c.sender.SendWithReceipt(ctx, msg, nil)
		}
	}
	<-c.sendTurn
	if err != nil {
		if ctx.Err() != nil {
			return c.notSent(ctx)
		}
		if ended := c.ended(); ended != nil {
			return fmt.Errorf("amqp: respond: %w", ended)
		}
		if isEnded(err) {
			err = linkFailure(ctx, err)
			c.fail(err)
		}
		return fmt.Errorf("amqp: respond: %w", err)
	}
	if track && c.answers != nil && !c.answers.track(&r, req, status) {
		return fmt.Errorf("amqp: respond: the connection closed before the hub could acknowledge the answer: %w", transport.ErrConnLost)
	}
	if c.log.Enabled(ctx, slog.LevelDebug) {
		c.log.Debug("amqp: method response sent", "method", req.Name, "request_id", req.RequestID, "status", status)
	}
	return nil
}

// notSent ends a Respond whose ctx ended before its answer went out. The
// answer link gave it no room, since IoT Hub grants credit as it takes
// answers: the Conn fails, as transport.Conn's contract asks.
func (c *conn) notSent(ctx context.Context) error {
	if c.ended() == nil {
		c.fail(fmt.Errorf("%w: %w", transport.ErrConnLost, errNoCredit))
	}
	return fmt.Errorf("amqp: respond: answer not sent: %w", ctx.Err())
}

// ended returns net.ErrClosed after Close, the failure once the Conn
// failed, and nil while it is usable.
func (c *conn) ended() error { return c.inbox.Err() }

// RefreshToken obtains a new token from the Config's credential and
// presents it with a CBS put-token on the live connection; nothing is
// reconnected and no request is lost. With a certificate credential there
// is no token: it returns the zero time and nil.
func (c *conn) RefreshToken(ctx context.Context) (time.Time, error) {
	if c.cbs == nil {
		return time.Time{}, nil
	}
	if err := c.ended(); err != nil {
		return time.Time{}, fmt.Errorf("amqp: refresh token: %w", err)
	}
	token, expiry, err := c.cfg.Credential.Token(ctx, c.cfg.Resource())
	if err != nil {
		return time.Time{}, fmt.Errorf("amqp: refresh token: %w", err)
	}
	if err := c.cbs.putToken(ctx, token, c.cfg.Resource(), c.opts.PutTokenTimeout); err != nil {
		return time.Time{}, fmt.Errorf("amqp: refresh token: %w", err)
	}
	c.log.Debug("amqp: token renewed", "expiry", expiry)
	return expiry, nil
}

// Close stops the goroutines, detaches the links and ends the session
// (waiting at most closeTimeout for the hub, and not at all once the Conn
// has failed) and closes the connection. Answers the hub had not settled
// by then are reported through Config.AnswerLost before Close returns. It
// is idempotent.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		failed := c.failed.Load()
		c.inbox.Close()
		c.stop()
		c.wg.Wait()
		c.inbox.Stop() // pump has ended: no request arrives after this
		// A Conn that failed is not detached gracefully: its hub may be
		// the reason, and would hold Close for closeTimeout.
		select {
		case <-c.client.Done():
		default:
			if !failed {
				ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
				_ = c.receiver.Close(ctx)
				_ = c.sender.Close(ctx)
				if c.cbs != nil {
					c.cbs.close(ctx)
				}
				_ = c.session.Close(ctx)
				cancel()
			}
		}
		if err := c.client.Close(); err != nil {
			// Diagnostic only: the connection may have failed before.
			c.log.Debug("amqp: close", "err", err)
		}
		if c.answers != nil {
			c.answers.stop()
		}
		c.log.Info("amqp disconnected")
	})
	return nil
}
