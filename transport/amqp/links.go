package amqp

import (
	"context"
	"fmt"

	goamqp "github.com/Azure/go-amqp"
)

// Attach properties of the method links (protocol.md §5.3).
const (
	apiVersionProperty    = "com.microsoft:api-version"
	channelProperty       = "com.microsoft:channel-correlation-id"
	clientVersionProperty = "com.microsoft:client-version"
	// APIVersion is the IoT Hub API version the method links announce.
	APIVersion = "2021-04-12"
)

// MethodsAddress returns the address of an identity's method links:
// /devices/{deviceID}/methods/devicebound, or
// /devices/{deviceID}/modules/{moduleID}/methods/devicebound for a module.
func MethodsAddress(deviceID, moduleID string) string {
	if moduleID != "" {
		return "/devices/" + deviceID + "/modules/" + moduleID + "/methods/devicebound"
	}
	return "/devices/" + deviceID + "/methods/devicebound"
}

// methodLinkProperties returns the attach properties shared by both method
// links: the API version, the channel correlation id that pairs them and,
// when set, the client version.
func methodLinkProperties(channel, userAgent string) map[string]any {
	props := map[string]any{
		apiVersionProperty: APIVersion,
		channelProperty:    channel,
	}
	if userAgent != "" {
		props[clientVersionProperty] = userAgent
	}
	return props
}

// attachMethodLinks attaches the receiver of requests and the sender of
// responses on the identity's method address. The receiver settles first,
// as the C and C# SDKs do. The sender leaves its answers unsettled, as the
// C SDK does (the C# SDK sends them pre-settled): the hub's disposition
// tells that an answer arrived, so one written just before the connection
// breaks is sent again on the next connection instead of being lost.
// Options.AnswerAtMostOnce sends them pre-settled instead.
func (c *conn) attachMethodLinks(ctx context.Context) error {
	address := MethodsAddress(c.cfg.DeviceID, c.cfg.ModuleID)
	channel := newUUID().String()
	props := methodLinkProperties("methods:"+channel, c.cfg.UserAgent)

	first := goamqp.ReceiverSettleModeFirst
	receiver, err := c.session.NewReceiver(ctx, address, &goamqp.ReceiverOptions{
		Name:           "methods-requests-" + channel,
		Credit:         receiverCredit,
		SettlementMode: &first,
		Properties:     props,
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
		Name:           "methods-responses-" + channel,
		SettlementMode: &answerMode,
		Properties:     props,
	})
	if err != nil {
		return fmt.Errorf("amqp: attach method sender on %s: %w", address, attachFailure(ctx, err))
	}
	c.sender = sender
	return nil
}
