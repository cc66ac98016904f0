package amqp

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/directmethods/iotdevice/internal/amqpwire"
	"github.com/directmethods/iotdevice/transport"
)

// newPutTokenRequest builds a CBS put-token request: the token as an
// amqp-value string body, the application properties operation=put-token,
// type=servicebus.windows.net:sastoken and name=audience, messageID (a
// string or a uint64) as message-id, and reply-to "cbs".
func newPutTokenRequest(token, audience string, messageID any) *goamqp.Message {
	replyTo := amqpwire.CBSReplyTo
	return &goamqp.Message{
		Properties: &goamqp.MessageProperties{MessageID: messageID, ReplyTo: &replyTo},
		ApplicationProperties: map[string]any{
			amqpwire.OperationProperty: amqpwire.PutTokenOperation,
			amqpwire.TypeProperty:      amqpwire.SASTokenType,
			amqpwire.NameProperty:      audience,
		},
		Value: token,
	}
}

// putTokenStatus reads a CBS response: its correlation-id, its
// status-code (any integer type) and its status-description. ok is false
// when the message carries no status code.
func putTokenStatus(msg *goamqp.Message) (correlationID any, status int, description string, ok bool) {
	if msg == nil {
		return nil, 0, "", false
	}
	if msg.Properties != nil {
		correlationID = msg.Properties.CorrelationID
	}
	description, _ = msg.ApplicationProperties[amqpwire.StatusDescriptionProperty].(string)
	status, ok = asInt(msg.ApplicationProperties[amqpwire.StatusCodeProperty])
	return correlationID, status, description, ok
}

// asInt converts an AMQP integer of any width to an int.
func asInt(v any) (int, bool) {
	switch n := v.(type) {
	case int32:
		return int(n), true
	case int64:
		return int(n), true
	case int16:
		return int(n), true
	case int8:
		return int(n), true
	case int:
		return n, true
	case uint32:
		return int(n), true
	case uint16:
		return int(n), true
	case uint8:
		return int(n), true
	case uint64:
		if n > 1<<31 {
			return 0, false
		}
		return int(n), true
	}
	return 0, false
}

// putTokenError turns a refused put-token into an error wrapping the
// transport sentinel that tells the client whether to retry. IoT Hub
// answers 404 for an identity it does not know ("Device {id} at IotHub
// {hub} not registered.", azure-iot-sdk-c#1413), which the C# SDK reports
// as DeviceNotFound (Azure/iotedge#5639).
func putTokenError(status int, description string) error {
	var sentinel error
	switch status {
	case 401, 403:
		sentinel = transport.ErrUnauthorized
	case 404:
		sentinel = transport.ErrIdentityNotFound
	case 429:
		sentinel = transport.ErrThrottled
	case 503:
		sentinel = transport.ErrServerBusy
	default:
		return fmt.Errorf("amqp: put-token refused (status %d: %q)", status, description)
	}
	return fmt.Errorf("amqp: put-token refused (status %d: %q): %w", status, description, sentinel)
}

// cbsClient is the pair of $cbs links of one connection, kept open for
// renewals.
type cbsClient struct {
	sender   *goamqp.Sender
	receiver *goamqp.Receiver
	// turn admits one put-token exchange at a time, so that each response
	// is read by the exchange that waits for it.
	turn chan struct{}
}

// openCBS attaches the $cbs sender and receiver on session.
func openCBS(ctx context.Context, session *goamqp.Session) (*cbsClient, error) {
	suffix := newUUID().String()
	settled := goamqp.SenderSettleModeSettled
	sender, err := session.NewSender(ctx, amqpwire.CBSAddress, &goamqp.SenderOptions{
		Name:           "$cbs-sender-" + suffix,
		SourceAddress:  amqpwire.CBSAddress,
		SettlementMode: &settled,
	})
	if err != nil {
		return nil, fmt.Errorf("attach %s sender: %w", amqpwire.CBSAddress, err)
	}
	receiver, err := session.NewReceiver(ctx, amqpwire.CBSAddress, &goamqp.ReceiverOptions{
		Name:           "$cbs-receiver-" + suffix,
		TargetAddress:  amqpwire.CBSAddress,
		Credit:         10,
		MaxMessageSize: maxMessageSize,
	})
	if err != nil {
		return nil, fmt.Errorf("attach %s receiver: %w", amqpwire.CBSAddress, err)
	}
	return &cbsClient{sender: sender, receiver: receiver, turn: make(chan struct{}, 1)}, nil
}

// putToken presents token for audience and waits for the response whose
// correlation-id matches the request's message-id. Responses to earlier,
// abandoned exchanges are skipped. Only status 200 is success.
func (c *cbsClient) putToken(ctx context.Context, token, audience string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	select {
	case c.turn <- struct{}{}:
		defer func() { <-c.turn }()
	case <-ctx.Done():
		return fmt.Errorf("amqp: put-token: %w", context.Cause(ctx))
	}

	messageID := newUUID().String()
	if err := c.sender.Send(ctx, newPutTokenRequest(token, audience, messageID), nil); err != nil {
		return fmt.Errorf("amqp: put-token: send: %w", linkFailure(ctx, err))
	}
	for {
		msg, err := c.receiver.Receive(ctx, nil)
		if err != nil {
			return fmt.Errorf("amqp: put-token: receive: %w", linkFailure(ctx, err))
		}
		if err := c.receiver.AcceptMessage(ctx, msg); err != nil {
			return fmt.Errorf("amqp: put-token: settle: %w", linkFailure(ctx, err))
		}
		id, status, description, ok := putTokenStatus(msg)
		if s, isString := id.(string); !isString || s != messageID {
			continue // the answer to an exchange that gave up waiting
		}
		if !ok {
			return errors.New("amqp: put-token: response without a status code")
		}
		if status != 200 {
			return putTokenError(status, description)
		}
		return nil
	}
}

// close detaches both links, bounded by ctx.
func (c *cbsClient) close(ctx context.Context) {
	_ = c.sender.Close(ctx)
	_ = c.receiver.Close(ctx)
}

// newUUID returns a random (version 4) uuid.
func newUUID() goamqp.UUID {
	var u goamqp.UUID
	_, _ = rand.Read(u[:]) // crypto/rand.Read never fails
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}
