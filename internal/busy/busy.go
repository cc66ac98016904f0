// Package busy is the answer a device gives to a method request it has no
// room for: one definition for the client, whose queue of requests
// waiting for a handler (device.ClientOptions.MaxPendingMethods) sets the
// policy, and for the adapters' own queues between the protocol library
// and the client, which fill only when the client stops receiving.
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
