package localhub

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/directmethods/iotdevice/internal/amqp"
	"github.com/directmethods/iotdevice/internal/amqpwire"
	"github.com/directmethods/iotdevice/internal/sastoken"
)

// CBS status codes (HTTP-like, as the hub answers them).
const (
	cbsOK           = 200
	cbsBadRequest   = 400
	cbsUnauthorized = 401
	cbsNotFound     = 404
)

// cbsTokenTypes are the put-token types accepted, compared
// case-insensitively: the C and Node SDKs send the first, C# the second.
var cbsTokenTypes = []string{amqpwire.SASTokenType, amqpwire.IoTHubSASTokenType}

// putToken is a parsed put-token request.
type putToken struct {
	token    string
	audience string
}

// cbsError is a put-token refusal: the status code and a description
// that never contains the token.
type cbsError struct {
	status      int32
	description string
}

func (e *cbsError) Error() string { return fmt.Sprintf("cbs %d: %s", e.status, e.description) }

// parsePutToken checks a request to the CBS node.
func parsePutToken(m *amqp.Message) (putToken, *cbsError) {
	bad := func(format string, args ...any) (putToken, *cbsError) {
		return putToken{}, &cbsError{cbsBadRequest, fmt.Sprintf(format, args...)}
	}
	prop := func(key string) string {
		s, _ := m.ApplicationProperties[key].(string)
		return s
	}
	if op := prop(amqpwire.OperationProperty); op != amqpwire.PutTokenOperation {
		return bad("operation %q is not put-token", clip(op))
	}
	typ := prop(amqpwire.TypeProperty)
	if !containsFold(cbsTokenTypes, typ) {
		return bad("token type %q is not supported", clip(typ))
	}
	audience := prop(amqpwire.NameProperty)
	if audience == "" {
		return bad("the name (audience) property is missing")
	}
	token, _ := m.Value.(string)
	if token == "" {
		return bad("the body is not an amqp-value string holding the token")
	}
	return putToken{token: token, audience: audience}, nil
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// verifyPutToken checks the token against the identity its audience
// names (or, for a host-only audience, its own sr names) and returns
// that identity and the token's expiry. An identity the hub does not know
// is refused 404, any other refusal 401.
func (h *Hub) verifyPutToken(req putToken, now time.Time) (string, time.Time, *cbsError) {
	unauthorized := func(format string, args ...any) (string, time.Time, *cbsError) {
		return "", time.Time{}, &cbsError{cbsUnauthorized, fmt.Sprintf(format, args...)}
	}
	host, name, hostOnly, err := parseAudience(req.audience)
	if err != nil {
		return "", time.Time{}, &cbsError{cbsBadRequest, "the audience names no device or module: " + err.Error()}
	}
	if hostOnly {
		t, err := sastoken.Parse(req.token)
		if err != nil {
			return unauthorized("the token is malformed")
		}
		if _, name, hostOnly, err = parseAudience(t.EncodedResource); err != nil || hostOnly {
			return unauthorized("the token's resource names no device or module")
		}
	}
	if !strings.EqualFold(host, h.hostName) {
		return unauthorized("the audience names another hub")
	}
	id, ok := h.reg.lookup(name)
	if !ok {
		// IoT Hub's words for it (azure-iot-sdk-c#1413, Azure/iotedge#5639):
		// 404 whatever the token, with the hub's name before its first dot.
		hub, _, _ := strings.Cut(h.hostName, ".")
		return "", time.Time{}, &cbsError{cbsNotFound, fmt.Sprintf("Device %s at IotHub %s not registered.", name, hub)}
	}
	expiry, err := h.reg.authenticateToken(id, req.token, now)
	if err != nil {
		return unauthorized("%s", err.Error())
	}
	return name, expiry, nil
}

// cbsReply builds the answer to a put-token request: the correlation id
// is the request's message id in its own AMQP type.
func cbsReply(messageID any, status int32, description string) *amqp.Message {
	return &amqp.Message{
		Properties: &amqp.Properties{CorrelationID: messageID},
		ApplicationProperties: map[string]any{
			amqpwire.StatusCodeProperty:        status,
			amqpwire.StatusDescriptionProperty: description,
		},
	}
}

// serveCBS serves a link on $cbs: the client's sender carries put-token
// requests, its receiver gets the answers.
func (c *amqpConn) serveCBS(ctx context.Context, l *amqp.Link) {
	if err := l.Accept(ctx); err != nil {
		return
	}
	c.log.Debug("amqp: cbs link attached", "link", l.Name(), "role", l.Role().String())
	defer c.log.Debug("amqp: cbs link detached", "link", l.Name())
	if l.Role() == amqp.RoleSender {
		c.sendCBSReplies(ctx, l)
		return
	}
	for {
		d, err := l.Receive(ctx)
		if err != nil {
			return
		}
		reply := c.handlePutToken(d.Message)
		if err := d.Accept(ctx); err != nil {
			return
		}
		select {
		case c.cbsReplies <- reply:
		case <-ctx.Done():
			return
		}
	}
}

// handlePutToken verifies one put-token request, authorizes its identity
// on success and returns the answer.
func (c *amqpConn) handlePutToken(m *amqp.Message) *amqp.Message {
	var messageID any
	if m.Properties != nil {
		messageID = m.Properties.MessageID
	}
	req, cerr := parsePutToken(m)
	if cerr == nil && messageID == nil {
		cerr = &cbsError{cbsBadRequest, "the request has no message-id"}
	}
	if cerr != nil {
		c.log.Warn("amqp: put-token refused", "status", cerr.status, "reason", cerr.description)
		return cbsReply(messageID, cerr.status, cerr.description)
	}
	identity, expiry, cerr := c.hub.verifyPutToken(req, time.Now())
	if cerr != nil {
		c.log.Warn("amqp: put-token refused", "status", cerr.status, "reason", cerr.description)
		return cbsReply(messageID, cerr.status, cerr.description)
	}
	c.authorize(identity, expiry)
	c.log.Info("amqp: put-token accepted", "identity", identity, "expires", expiry)
	return cbsReply(messageID, cbsOK, "OK")
}

// sendCBSReplies forwards put-token answers to the client's $cbs
// receiver until the link ends. Sends run on their own goroutines so an
// unsettled answer waiting for its disposition holds nothing up.
func (c *amqpConn) sendCBSReplies(ctx context.Context, l *amqp.Link) {
	var sends sync.WaitGroup
	defer sends.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case reply := <-c.cbsReplies:
			sends.Go(func() { // owned by this link handler: ends with the link (ctx); joined above
				if _, err := l.Send(ctx, reply); err != nil {
					c.log.Debug("amqp: cbs reply not delivered", "err", err)
				}
			})
		}
	}
}
