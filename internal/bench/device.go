package bench

import (
	"context"
	"fmt"
)

// Device kinds. How answers are delivered is a choice of the device, not a
// cost of the SDK's code, so each SDK kind has a raw kind that delivers its
// answers the same way.
const (
	// KindSDK is a device built on this SDK, with its defaults: answers
	// are acknowledged by the hub (MQTT QoS 1, AMQP unsettled), and
	// Respond waits for the acknowledgement.
	KindSDK = "sdk"
	// KindSDKAtMostOnce is KindSDK with AnswerAtMostOnce: answers at MQTT
	// QoS 0 or AMQP pre-settled, never acknowledged.
	KindSDKAtMostOnce = "sdk-at-most-once"
	// KindRaw is the same echo written directly on the protocol library,
	// with none of the SDK's code in the path: the floor the SDK is
	// measured against. It answers at most once (MQTT QoS 0, AMQP
	// pre-settled), as the C and Node SDKs do over MQTT and the C# SDK
	// over AMQP.
	KindRaw = "raw"
	// KindRawAtLeastOnce is KindRaw with acknowledged answers (MQTT QoS 1,
	// AMQP unsettled), as KindSDK sends them.
	KindRawAtLeastOnce = "raw-at-least-once"
	// KindFloor is the echo written by hand, MQTT only: no MQTT or
	// WebSocket library, one goroutine that reads each request and writes
	// its answer at QoS 0. It is the floor of the CPU a device spends per
	// call.
	KindFloor = "floor"
	// KindFloorAtLeastOnce is KindFloor answering at QoS 1; it reads and
	// discards the hub's acknowledgements in the same loop.
	KindFloorAtLeastOnce = "floor-at-least-once"
	// KindFloorHandoff is KindFloor with one goroutine handoff per call:
	// the loop hands each request to one of 16 workers, which answers it
	// at QoS 0. As the SDK never runs a handler on the goroutine that
	// reads the network, this is the least it can spend per call.
	KindFloorHandoff = "floor-handoff"
	// KindFloorHandoffAtLeastOnce is KindFloorHandoff answering at QoS 1.
	KindFloorHandoffAtLeastOnce = "floor-handoff-at-least-once"
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
	case KindSDK, KindSDKAtMostOnce:
		return connectSDK(ctx, kind, name, t, connectionString)
	case KindRaw, KindRawAtLeastOnce:
		return connectRaw(ctx, name, kind == KindRawAtLeastOnce, t, connectionString)
	case KindFloor, KindFloorAtLeastOnce, KindFloorHandoff, KindFloorHandoffAtLeastOnce:
		var qos byte
		if kind == KindFloorAtLeastOnce || kind == KindFloorHandoffAtLeastOnce {
			qos = 1
		}
		workers := 0
		if kind == KindFloorHandoff || kind == KindFloorHandoffAtLeastOnce {
			workers = floorHandoffWorkers
		}
		switch name {
		case "mqtt", "mqtt-ws":
			return connectFloor(ctx, name == "mqtt-ws", qos, workers, t, connectionString)
		}
		return nil, fmt.Errorf("bench: no floor device for transport %q (MQTT only)", name)
	}
	return nil, fmt.Errorf("bench: unknown device kind %q: want %s, %s, %s, %s, %s, %s, %s or %s", kind, KindSDK, KindSDKAtMostOnce, KindRaw, KindRawAtLeastOnce,
		KindFloor, KindFloorAtLeastOnce, KindFloorHandoff, KindFloorHandoffAtLeastOnce)
}

// connectRaw picks the raw device of a transport; acknowledged selects
// answers the hub acknowledges.
func connectRaw(ctx context.Context, name string, acknowledged bool, t *Target, connectionString string) (Device, error) {
	var qos byte
	if acknowledged {
		qos = 1
	}
	switch name {
	case "mqtt":
		return connectRawMQTT(ctx, false, qos, t, connectionString)
	case "mqtt-ws":
		return connectRawMQTT(ctx, true, qos, t, connectionString)
	case "amqp":
		return connectRawAMQP(ctx, false, acknowledged, t, connectionString)
	case "amqp-ws":
		return connectRawAMQP(ctx, true, acknowledged, t, connectionString)
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

// Pair is an SDK device kind and the devices it is measured against: the
// raw kind that is its floor in latency and rate (the same protocol
// behaviour on the protocol library, with none of the SDK's code), the
// floor kind that is the floor of its CPU per call, and the handoff floor
// that is the floor of a device that answers off its reading goroutine.
type Pair struct {
	SDK, Raw string
	// Floor is the hand-written device answering as SDK does; empty on a
	// transport that has none (AMQP).
	Floor string
	// Handoff is Floor with one goroutine handoff per call; empty where
	// Floor is.
	Handoff string
}

// Pairs returns the comparisons to make on transport name: the SDK's
// default against the devices with acknowledged answers, and the SDK with
// AnswerAtMostOnce against those answering at most once.
func Pairs(name string) []Pair {
	pairs := []Pair{{SDK: KindSDK, Raw: KindRawAtLeastOnce}, {SDK: KindSDKAtMostOnce, Raw: KindRaw}}
	if name == "mqtt" || name == "mqtt-ws" {
		pairs[0].Floor, pairs[1].Floor = KindFloorAtLeastOnce, KindFloor
		pairs[0].Handoff, pairs[1].Handoff = KindFloorHandoffAtLeastOnce, KindFloorHandoff
	}
	return pairs
}
