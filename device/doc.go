// Package device is the device side of Azure IoT Hub direct methods: a
// Client that connects a device or module to the hub, receives method
// invocations and answers them with the status and JSON payload of your
// handler.
//
//	client, err := device.NewClientFromConnectionString(cs, nil)
//	mux := device.NewMethodMux()
//	mux.HandleFunc("reboot", func(ctx context.Context, req *device.MethodRequest) (*device.MethodResponse, error) {
//		return device.JSONResponse(200, map[string]string{"scheduled": "now"})
//	})
//	err = client.Run(ctx, mux)
//
// The transport is pluggable (ClientOptions.Transport): MQTT by default,
// AMQP, or either over WebSockets. Tests of your own handlers use the fake
// transport of package transport/transporttest, with no network.
//
// An IoT Edge module gets its client from the environment the runtime
// sets with package edge (edge.NewModuleClient): its tokens are signed by
// the runtime's workload API and the edge hub is
// trusted through the runtime's trust bundle. edge.MethodInvoker makes
// module-to-module calls through the edge hub.
//
// # Behaviour
//
// Every request is answered exactly once, and never left to time out at
// the caller: unknown methods get 501, a request body that is not JSON
// gets 400, a handler error gets 500 (or the status of a *MethodError), a
// panic gets 500, a handler past its deadline gets 504, an answer that is
// not JSON or exceeds 128 KB is replaced by 500, and requests beyond the
// transport's queue get 503. Each handler runs on a goroutine of its own,
// at most MaxConcurrentMethods at a time, never on the network's, so a
// slow handler delays neither keep-alives nor other methods.
//
// # The path of a request
//
// Three steps, over one goroutine handoff:
//
//  1. The transport's reader (the MQTT session's, or go-amqp's receiver
//     and the AMQP adapter's pump) queues the request for Receive; when
//     the queue is full it answers 503 itself.
//  2. A goroutine of the connection's crew (crew.go), waiting in Receive,
//     takes it. Each of the crew's goroutines holds a handler slot, so
//     requests beyond MaxConcurrentMethods stay in the transport's queue;
//     the one that takes a request starts another if none is left
//     waiting and a slot is free. The same goroutine checks the request,
//     runs the handler under its deadline (dispatcher.run, in
//     dispatch.go) and writes the answer itself (dispatcher.answer), on
//     the connection the request arrived on (origin.go): over MQTT, the
//     write goes straight to the network when no other is in progress.
//     If the deadline passes first, the goroutine's timer (deadlineTimer,
//     in callctx.go) answers 504 on the handler's behalf and hands its
//     slot to a new goroutine.
//     Then it waits for the next request, or ends if two others wait.
//  3. The hub's acknowledgement of the answer is awaited by the transport,
//     apart from the handler, which is done (Stats.AnswersLost counts the
//     answers the hub did not confirm).
//
// The connection loop (connectLoop and serveConn, in run.go) dials,
// renews tokens and reconnects; it never touches a request.
//
// Run reconnects after failures with exponential backoff and full jitter,
// and every connection is subscribed to methods before it counts as
// connected. Tokens are renewed at 80 % of their lifetime: in band on AMQP,
// by a new connection on MQTT.
//
// # Concurrency
//
// A Client is safe for concurrent use. Run blocks; call it once, usually
// in its own goroutine, and stop it with Close or its context.
// OnStateChange runs on one goroutine of the client's, in order.
//
// # Errors
//
// Run returns ErrClientClosed after Close, the context's cause when its
// context ends, or an *Error whose Code says why the hub will not take the
// client (unauthorized, unknown identity, certificate verification).
// Constructor errors wrap ErrInvalidConfig or sas.ErrInvalidConnectionString.
//
// # Logging
//
// ClientOptions.Logger receives connection changes at Info, retries at
// Warn and each request at Debug, with the keys device_id, method,
// request_id, status, attempt, delay and err. Payloads, keys and tokens are
// never logged.
package device
