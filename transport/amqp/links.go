package amqp

import (
	"context"
	"fmt"

	goamqp "github.com/Azure/go-amqp"
	"github.com/directmethods/iotdevice/internal/amqpwire"
)

// methodLinkProperties returns the attach properties shared by both method
// links: the API version, the channel correlation id that pairs them and,
// when set, the client version and the Plug and Play model ID.
func methodLinkProperties(channel, userAgent, modelID string) map[string]any {
	props := map[string]any{
		amqpwire.APIVersionProperty:         amqpwire.APIVersion,
		amqpwire.ChannelCorrelationProperty: channel,
	}
	if userAgent != "" {
		props[amqpwire.ClientVersionProperty] = userAgent
	}
	if modelID != "" {
		props[amqpwire.ModelIDProperty] = modelID
	}
	return props
}

// attachMethodLinks attaches the receiver of requests and the sender of
// responses on the identity's method address. The receiver settles first,
// as the C and C# SDKs do. The sender leaves its answers unsettled, as the
// C SDK does (the C# SDK sends them pre-settled): the hub's disposition
// tells that an answer arrived, and one the hub did not accept is reported
// through Config.AnswerLost. Options.AnswerAtMostOnce sends them
// pre-settled instead. The frame guard watches both links, so that the
// hub detaching either ends the Conn at once.
func (c *conn) attachMethodLinks(ctx context.Context) error {
	address := amqpwire.MethodsAddress(c.cfg.DeviceID, c.cfg.ModuleID)
	props := methodLinkProperties("methods:"+c.channel, c.cfg.UserAgent, c.cfg.ModelID)

	first := goamqp.ReceiverSettleModeFirst
	receiver, err := c.session.NewReceiver(ctx, address, &goamqp.ReceiverOptions{
		Name:           c.receiverName(),
		Credit:         receiverCredit,
		SettlementMode: &first,
		Properties:     props,
		MaxMessageSize: maxMessageSize,
	})
	if err != nil {
		return fmt.Errorf("amqp: attach method receiver on %s: %w", address, attachFailure(ctx, err))
	}
	c.receiver = receiver

	answerMode := goamqp.SenderSettleModeUnsettled
	if c.opts.AnswerAtMostOnce {
		answerMode = goamqp.SenderSettleModeSettled
	}
	sender, err := c.session.NewSender(ctx, address, &goamqp.SenderOptions{
		Name:           c.senderName(),
		SettlementMode: &answerMode,
		Properties:     props,
	})
	if err != nil {
		return fmt.Errorf("amqp: attach method sender on %s: %w", address, attachFailure(ctx, err))
	}
	c.sender = sender
	return nil
}
