package provisioning

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/directmethods/iotdevice/internal/mqttsession"
	"github.com/directmethods/iotdevice/internal/mqttwire"
	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// answerWait bounds the wait for DPS's answer to one request: past it the
// connection is given up and a new one retries.
const answerWait = 30 * time.Second

// maxRestarts bounds how often Register starts over because DPS no longer
// knows the operation it polls.
const maxRestarts = 3

// Register registers the device and returns its assignment once DPS has
// made it. It retries what can succeed later (see the package doc) until
// ctx ends, and returns at once on a refusal, with an *Error.
func (c *Client) Register(ctx context.Context) (*Result, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	r := &registration{c: c}
	attempt := 0
	for {
		result, wait, err := r.connectAndRegister(ctx)
		if err == nil {
			c.log.Info("provisioning: registered", "hub", result.AssignedHub, "device_id", result.DeviceID, "status", result.Status)
			return result, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("provisioning: register: %w (last: %w)", context.Cause(ctx), err)
		}
		if isFinal(err) {
			c.log.Warn("provisioning: registration refused", "err", err)
			return nil, err
		}
		attempt++
		if wait <= 0 {
			wait = c.opts.Backoff(attempt)
		}
		c.log.Warn("provisioning: registration failed; retrying", "attempt", attempt, "delay", wait, "err", err)
		if !sleep(ctx, wait) {
			return nil, fmt.Errorf("provisioning: register: %w (last: %w)", context.Cause(ctx), err)
		}
	}
}

// registration is one Register call's state across its connections: the
// operation DPS started, so that a new connection polls it rather than
// registering again.
type registration struct {
	c           *Client
	operationID string
	restarts    int // times DPS no longer knew operationID
}

// connectAndRegister registers over one connection. On failure it returns
// how long to wait before the next attempt, when DPS said (zero: the
// backoff decides).
func (r *registration) connectAndRegister(ctx context.Context) (*Result, time.Duration, error) {
	s, answers, err := r.c.connect(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer s.Close()
	for {
		rid := strconv.FormatUint(r.c.nextRID.Add(1), 10)
		topic, body := mqttwire.DPSRegisterTopic(rid), r.c.requestBody()
		if r.operationID != "" {
			topic, body = mqttwire.DPSPollTopic(rid, r.operationID), nil
		}
		if err := s.Publish(ctx, topic, 1, body, nil); err != nil {
			return nil, 0, fmt.Errorf("provisioning: send request: %w", err)
		}
		a, err := awaitAnswer(ctx, s, answers, rid)
		if err != nil {
			return nil, 0, err
		}
		result, next, err := r.handle(a)
		switch {
		case result != nil:
			return result, 0, nil
		case err != nil:
			return nil, next, err
		}
		if !sleep(ctx, next) { // 202, or 429 with a retry-after: ask again on this connection
			return nil, 0, ctx.Err()
		}
	}
}

// handle reads one answer of DPS: the result, or how long to wait before
// the next request on the same connection (err nil), or an error with how
// long to wait before a new connection (zero: the backoff decides).
func (r *registration) handle(a answer) (*Result, time.Duration, error) {
	switch {
	case a.status == 202 || a.status == 200:
		op, err := parseOperation(a.body)
		if err != nil {
			return nil, 0, err
		}
		switch op.Status {
		case "assigned":
			if op.RegistrationState == nil {
				return nil, 0, fmt.Errorf("%w: assigned, without a registration state", errMalformedAnswer)
			}
			res := op.RegistrationState.result()
			if err := res.validate(); err != nil {
				return nil, 0, err
			}
			return res, 0, nil
		case "failed", "disabled":
			return nil, 0, op.refusal(a.status)
		}
		if op.OperationID == "" {
			return nil, 0, fmt.Errorf("%w: %s without an operation id", errMalformedAnswer, op.Status)
		}
		r.operationID = op.OperationID
		return nil, pollInterval(a.retryAfter), nil
	case a.status == 429:
		return nil, pollInterval(a.retryAfter), nil
	case a.status == 404 && r.operationID != "" && r.restarts < maxRestarts:
		// DPS no longer knows the operation (it keeps them for a while
		// only): register again.
		r.operationID, r.restarts = "", r.restarts+1
		return nil, 0, nil
	case a.status >= 500:
		return nil, a.retryAfter, newError(a.status, a.body)
	}
	return nil, 0, newError(a.status, a.body)
}

// pollInterval is how long to wait before asking again: the retry-after
// DPS gave, or DefaultPollInterval.
func pollInterval(retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return retryAfter
	}
	return DefaultPollInterval
}

// answer is one answer of DPS to a request.
type answer struct {
	status     int
	retryAfter time.Duration
	body       []byte
}

// connect opens a connection to DPS and subscribes to its answers, which
// arrive on answers, keyed by request id.
func (c *Client) connect(ctx context.Context) (*mqttsession.Session, <-chan keyedAnswer, error) {
	cfg := &transport.Config{
		HostName:   c.opts.Host,
		Port:       c.opts.Port,
		Credential: c.cred,
		TLSConfig:  c.opts.TLSConfig,
		UserAgent:  c.opts.UserAgent,
		Proxy:      c.opts.Proxy,
		Logger:     c.log,
	}
	tlsConfig, err := cfg.ClientTLS()
	if err != nil {
		return nil, nil, fmt.Errorf("provisioning: %w", err)
	}
	var password string // none with a certificate: the TLS handshake authenticates
	if c.cert == nil {
		if password, _, err = c.cred.Token(ctx, sas.ProvisioningResource(c.idScope, c.registrationID)); err != nil {
			return nil, nil, fmt.Errorf("%w: token: %w", ErrInvalidConfig, err)
		}
	}
	address := cfg.Address(c.opts.Network.DefaultPort)
	nc, err := c.opts.Network.Dial(ctx, address, tlsConfig, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("provisioning: connect to %s: %w", address, withCause(ctx, err))
	}
	br, err := mqttsession.Connect(ctx, nc, c.connectPacket(password))
	if err != nil {
		_ = nc.Close()
		var refused *mqttsession.ConnackError
		if errors.As(err, &refused) {
			return nil, nil, connackError(refused)
		}
		return nil, nil, fmt.Errorf("provisioning: %w (endpoint %s)", err, address)
	}
	answers := make(chan keyedAnswer, 4)
	s := mqttsession.Start(nc, br, mqttsession.Config{
		KeepAlive:   keepAlive,
		PingTimeout: keepAlive,
		Logger:      c.log,
		OnPublish:   func(p *packets.PublishPacket) bool { return c.onAnswer(p, answers) },
	})
	code, err := s.Subscribe(ctx, mqttwire.DPSResponseFilter, 1)
	if err == nil && code == 0x80 {
		err = errors.New("subscription refused")
	}
	if err != nil {
		s.Close()
		return nil, nil, fmt.Errorf("provisioning: subscribe to %s: %w", mqttwire.DPSResponseFilter, err)
	}
	return s, answers, nil
}

// keyedAnswer is an answer with the request id it answers.
type keyedAnswer struct {
	rid string
	answer
}

// onAnswer hands an answer of DPS to the request that waits for it; it
// runs on the session's reader and never blocks: an answer nobody can
// take (the request gave up) is dropped. Messages on other topics are not
// acknowledged.
func (c *Client) onAnswer(p *packets.PublishPacket, answers chan<- keyedAnswer) bool {
	resp, err := mqttwire.ParseDPSResponseTopic(p.TopicName)
	if err != nil {
		c.log.Warn("provisioning: ignoring a message on an unexpected topic", "topic", p.TopicName, "err", err)
		return false
	}
	select {
	case answers <- keyedAnswer{rid: resp.RequestID, answer: answer{status: resp.Status, retryAfter: resp.RetryAfter, body: p.Payload}}:
	default:
		c.log.Warn("provisioning: dropping an answer nobody waits for", "status", resp.Status)
	}
	return true
}

// awaitAnswer waits for the answer to request rid, skipping answers to
// earlier requests.
func awaitAnswer(ctx context.Context, s *mqttsession.Session, answers <-chan keyedAnswer, rid string) (answer, error) {
	t := time.NewTimer(answerWait)
	defer t.Stop()
	for {
		select {
		case a := <-answers:
			if a.rid == rid {
				return a.answer, nil
			}
		case <-s.Done():
			return answer{}, fmt.Errorf("provisioning: connection lost: %w", s.Err())
		case <-t.C:
			return answer{}, fmt.Errorf("provisioning: no answer within %v", answerWait)
		case <-ctx.Done():
			return answer{}, ctx.Err()
		}
	}
}

// connectPacket is the CONNECT of a registration.
func (c *Client) connectPacket(password string) *packets.ConnectPacket {
	p := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	p.ProtocolName, p.ProtocolVersion = "MQTT", 4
	p.CleanSession = true
	p.ClientIdentifier = c.registrationID
	p.UsernameFlag, p.Username = true, mqttwire.DPSUsername(c.idScope, c.registrationID, c.opts.UserAgent)
	if password != "" {
		p.PasswordFlag, p.Password = true, []byte(password)
	}
	p.Keepalive = uint16(keepAlive / time.Second)
	return p
}

// withCause keeps the cause of a cancelled ctx next to a network error.
func withCause(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) {
		return fmt.Errorf("%w (%w)", cause, err)
	}
	return err
}

// sleep waits for d or ctx; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
