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
// responses on the identity's method address. The sender is pre-settled
// and the receiver settles first, as the C# SDK does.
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

	settled := goamqp.SenderSettleModeSettled
	sender, err := c.session.NewSender(ctx, address, &goamqp.SenderOptions{
		Name:           "methods-responses-" + channel,
		SettlementMode: &settled,
		Properties:     props,
	})
	if err != nil {
		return fmt.Errorf("amqp: attach method sender on %s: %w", address, attachFailure(ctx, err))
	}
	c.sender = sender
	return nil
}
