package bench

import (
	"context"
	"fmt"
	"strings"
)

// Device kinds.
const (
	// KindSDK is a device built on this SDK, with its defaults: over MQTT
	// it answers at QoS 1.
	KindSDK = "sdk"
	// KindSDKQoS0 is KindSDK answering at QoS 0 over MQTT
	// (mqtt.Options.AnswerAtMostOnce), to be measured against KindRaw.
	KindSDKQoS0 = "sdk-qos0"
	// KindRaw is the same echo written directly on the protocol library,
	// with none of the SDK's code in the path: the floor the SDK is
	// measured against. Over MQTT it answers at QoS 0, as the C and Node
	// SDKs do.
	KindRaw = "raw"
	// KindRawQoS1 is KindRaw answering at QoS 1 over MQTT, as this SDK
	// does, to tell the cost of the QoS from that of the SDK's code.
	KindRawQoS1 = "raw-qos1"
)

// EchoMethod is the method every benchmark device answers: status 200 and
// the request's payload ("null" when there is none).
const EchoMethod = "echo"

// Device is one connected device answering EchoMethod until closed.
type Device interface {
	Close() error
}

// Connect connects one device of kind over transport name as the identity
// of connectionString, and returns once it is subscribed to methods.
func Connect(ctx context.Context, kind, name string, t *Target, connectionString string) (Device, error) {
	switch kind {
	case KindSDK, KindSDKQoS0:
		return connectSDK(ctx, kind, name, t, connectionString)
	case KindRaw:
		return connectRaw(ctx, name, t, connectionString)
	case KindRawQoS1:
		switch name {
		case "mqtt":
			return connectRawMQTT(ctx, false, 1, t, connectionString)
		case "mqtt-ws":
			return connectRawMQTT(ctx, true, 1, t, connectionString)
		}
		return nil, fmt.Errorf("bench: device kind %s is for MQTT transports only", kind)
	}
	return nil, fmt.Errorf("bench: unknown device kind %q: want %s, %s, %s or %s", kind, KindSDK, KindSDKQoS0, KindRaw, KindRawQoS1)
}

// connectRaw picks the raw device of a transport.
func connectRaw(ctx context.Context, name string, t *Target, connectionString string) (Device, error) {
	switch name {
	case "mqtt":
		return connectRawMQTT(ctx, false, 0, t, connectionString)
	case "mqtt-ws":
		return connectRawMQTT(ctx, true, 0, t, connectionString)
	case "amqp":
		return connectRawAMQP(ctx, false, t, connectionString)
	case "amqp-ws":
		return connectRawAMQP(ctx, true, t, connectionString)
	}
	return nil, fmt.Errorf("bench: no raw device for transport %q", name)
}

// echoPayload is what the echo answers for a request payload.
func echoPayload(request []byte) []byte {
	if len(request) == 0 {
		return []byte("null")
	}
	return request
}

// Pair is an SDK device kind and the raw kind that is its floor: the same
// protocol behaviour with none of the SDK's code.
type Pair struct {
	SDK, Raw string
}

// Pairs returns the comparisons to make on transport name. Over MQTT the
// QoS of the answers is a choice of the device, not a cost of the SDK's
// code, so each QoS is compared with the raw device answering at the same
// QoS: the SDK's default (QoS 1) and its AnswerAtMostOnce option (QoS 0).
func Pairs(name string) []Pair {
	if strings.HasPrefix(name, "mqtt") {
		return []Pair{{KindSDK, KindRawQoS1}, {KindSDKQoS0, KindRaw}}
	}
	return []Pair{{KindSDK, KindRaw}}
}
