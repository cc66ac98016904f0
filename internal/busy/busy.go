// Package busy is the answer a device gives to a method request it has no
// room for: one definition for the adapters' queues between the network
// and the client, the only queue of requests waiting for a handler slot
// (device.ClientOptions.MaxConcurrentMethods), and for the transport
// fake's.
//
// 503 is the status IoT Hub's callers read as "try again later"; the
// body is the client's usual error body.
package busy

// Status is the status of the busy answer.
const Status = 503

// Body returns the JSON body of the busy answer. It returns a new slice
// each time, so that no caller can change another's answer.
func Body() []byte {
	return []byte(`{"error":"device busy: too many pending requests"}`)
}
