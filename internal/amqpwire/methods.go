package amqpwire

// Attach properties of the method links, the same on both links.
const (
	// APIVersionProperty announces the API version the client speaks.
	APIVersionProperty = "com.microsoft:api-version"
	// ChannelCorrelationProperty pairs an identity's request and response
	// links: both carry the same value.
	ChannelCorrelationProperty = "com.microsoft:channel-correlation-id"
	// ClientVersionProperty names the client software (its user agent).
	ClientVersionProperty = "com.microsoft:client-version"
	// ModelIDProperty announces the identity's IoT Plug and Play model ID
	// (azure-iot-sdk-csharp, AmqpIotConstants.ModelId).
	ModelIDProperty = "com.microsoft:model-id"
	// APIVersion is the IoT Hub API version this module's links announce,
	// the one the Node.js device SDK announces.
	APIVersion = "2021-04-12"
)

// Application properties of method messages.
const (
	// MethodNameProperty carries the method name of a request, a string.
	MethodNameProperty = "IoThub-methodname"
	// StatusProperty carries the status of a response, an int32.
	StatusProperty = "IoThub-status"
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
