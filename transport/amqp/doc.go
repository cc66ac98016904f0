// Package amqp carries IoT Hub direct methods over AMQP 1.0 on TLS port
// 5671. Its Dialer implements transport.Dialer on top of
// github.com/Azure/go-amqp: it opens the secured byte stream itself
// (Options.Network) and hands it to go-amqp.
//
// AMQP over WebSockets (wss://{host}:443/$iothub/websocket, subprotocol
// "AMQPWSB10") is in package amqpws, which plugs a WebSocket Network into
// this package's Dialer. Keeping it apart means a program that only uses
// AMQP over TLS links neither an HTTP client nor a WebSocket library.
//
// # Protocol
//
// The open frame names the hub's host. With a SAS credential a Dial opens
// the connection with SASL ANONYMOUS and presents the token with a
// claims-based-security put-token on the $cbs node (an amqp-value body
// holding the token; operation=put-token,
// type=servicebus.windows.net:sastoken, name=the audience
// "{host}/devices/{id}[/modules/{mid}]"), which succeeds only on status
// 200, as in the Node.js SDK. The $cbs links stay open: the returned Conn
// implements transport.TokenRefresher and renews the token with a new
// put-token on the live connection, without reconnecting, as the C and
// Node.js SDKs do. Each put-token waits at most Options.PutTokenTimeout, 30 s
// by default, as in the C SDK. With a certificate credential the TLS
// client certificate authenticates, and there is neither SASL nor CBS; the
// Conn still implements RefreshToken, which then does nothing and returns
// the zero time.
//
// The Dial then attaches a receiver (source) and a sender (target) on
// /devices/{id}[/modules/{mid}]/methods/devicebound, both with the
// attach properties com.microsoft:api-version,
// com.microsoft:channel-correlation-id "methods:{uuid}", the same on both
// links, as the C# and Node.js SDKs send it, and
// com.microsoft:client-version; it returns only once both are attached.
// A request carries a uuid correlation-id, the method name in
// IoThub-methodname and the payload in a data section; a request without
// them is rejected with amqp:decode-error, as the C SDK does. Responses
// are sent unsettled, as the C SDK sends them, with the request's
// correlation id in its wire type, IoThub-status as an int32 and one data
// section. With Options.AnswerAtMostOnce they go pre-settled, as the C#
// SDK sends them.
//
// Sources:
//
//   - Communicate with your IoT hub by using the AMQP protocol:
//     https://learn.microsoft.com/azure/iot-hub/iot-hub-amqp-support
//   - Control access to IoT Hub with shared access signatures:
//     https://learn.microsoft.com/azure/iot-hub/authenticate-authorize-sas
//     (claims-based security)
//   - Azure/azure-iot-sdk-c, iothub_client/src/iothubtransportamqp_methods.c
//     (method links, request checks),
//     iothub_client/src/iothubtransport_amqp_cbs_auth.c (put-token,
//     renewal on the live connection) and
//     iothub_client/src/iothubtransport_amqp_common.c (put-token timeout)
//   - Azure/azure-iot-sdk-node, common/transport/amqp/src/amqp_cbs.ts
//     (put-token, status 200), device/transport/amqp/src/amqp.ts (renewal)
//     and device/transport/amqp/src/amqp_device_method_client.ts (method
//     links)
//   - Azure/azure-iot-sdk-csharp, iothub/device/src/Transport/Amqp/AmqpUnit.cs
//     and iothub/device/src/Transport/AmqpIot/AmqpIotSession.cs (channel
//     correlation id, settle modes)
//   - Handle direct methods from IoT Hub (the 128 KB payload limit):
//     https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-direct-methods
//   - OASIS AMQP 1.0, part 2 (transport: section 2.4.1 on the frame size
//     before open, 2.7.1 on MIN-MAX-FRAME-SIZE) and part 3 (messaging:
//     section 3.2.10 on annotation keys, 3.4 on outcomes):
//     https://docs.oasis-open.org/amqp/core/v1.0/amqp-core-complete-v1.0.pdf
//   - Azure/go-amqp#369 (a panic on annotation keys that are not
//     comparable)
//
// # Behaviour
//
// The adapter only moves bytes: a Conn never reconnects, and retry,
// dispatch, JSON validation and deciding when to renew tokens belong to
// the client (package device), which dials again when a Conn fails.
//
// A frame guard sits between the network connection (over TLS or
// WebSockets alike) and go-amqp, and checks each protocol header and
// frame the hub sends before go-amqp reads it. It refuses, ending the
// connection, a frame above 512 bytes before the hub's open or above the
// 64 KiB max-frame-size of the adapter's open after it, from its header,
// so that no claimed size is buffered; a message (reassembled from its
// transfers, up to 192 KiB: the 128 KB method payload and room for the
// other sections) whose annotations have keys other than symbol and
// ulong, as AMQP requires; and anything else go-amqp v1.7.0 would panic
// or spin on: maps with binary, list, map or array keys anywhere, a flow
// without link-credit, an open with a max-frame-size below 512, and
// delivery ids and disposition ranges reaching 4294967295. The guard
// holds at most one frame and 192 KiB of unfinished messages.
//
// Respond returns once its answer is written, not once the hub has
// settled it. ctx bounds the wait before: an answer that could not go out
// before ctx ends is not sent at all, and since the hub grants the answer
// link credit as it takes answers, a link that gave an answer no room
// until then is treated as failed. The hub's disposition of each
// unsettled answer is awaited apart: one the hub rejects, releases or
// modifies, or that the connection loses first, is reported through
// Config.AnswerLost, as is the oldest when more than 128 answers await
// their disposition. Pre-settled answers (Options.AnswerAtMostOnce) have
// no disposition, and none is reported; nor are the adapter's own 503
// answers, whose requests the client never saw.
//
// The hub detaching either method link ends the Conn at once: the guard
// sees the detach before go-amqp does, and the requests that follow it
// are released, never accepted, since they could not be answered. Close
// does not wait for a hub whose Conn has failed.
//
// # Concurrency
//
// Receive, Respond and RefreshToken may each be called from many
// goroutines, concurrently with each other and with Close; each request
// goes to one Receive. Answers reach
// go-amqp one at a time, each waiting its turn only until its ctx ends.
// Each Conn runs three goroutines, joined by Close: one takes requests
// from go-amqp's receiver and queues them (Options.QueueSize), answering
// 503 without waiting when the queue is full; one sends those 503
// answers, each waiting at most 10 s for credit; and one awaits the
// dispositions of the answers in the order they were sent and calls
// Config.AnswerLost, which therefore must not block; it is called at most
// once per answer and never with a lock held. The frame guard runs on
// go-amqp's reading goroutine.
//
// # Errors
//
// A put-token refused with status 401 or 403, and the condition
// amqp:unauthorized-access, wrap transport.ErrUnauthorized; a put-token
// refused with status 404 (IoT Hub's answer for an identity it does not
// know) and amqp:not-found on the method links wrap
// transport.ErrIdentityNotFound;
// amqp:resource-limit-exceeded and com.microsoft:device-container-throttled
// wrap transport.ErrThrottled; com.microsoft:timeout and
// com.microsoft:server-busy wrap transport.ErrServerBusy. A connection,
// session or link that ends wraps transport.ErrConnLost, and Receive
// returns it once the buffered requests are drained; so does input the
// frame guard refused (its error names what it refused: for a frame, its
// size and the limit), and an answer link that gave no credit before an
// answer's deadline, while that Respond returns its ctx's error. Errors
// given to Config.AnswerLost say whether the hub rejected the answer
// (with the hub's error condition), released or modified it, or the
// connection ended first (wrapping transport.ErrConnLost). A closed Conn
// returns errors wrapping net.ErrClosed; certificate failures keep their
// crypto/x509 error in the chain. Package device decides from these what
// to retry.
//
// # Logging
//
// Logs go to Config.Logger with the attribute transport=amqp
// (transport=amqp-{Network.Name} over a network other than the default,
// such as amqp-ws over WebSockets) and the keys device_id, method,
// request_id, status and err: Info for connection changes (with the
// network's name), Debug per request, Warn for rejected, dropped or
// refused requests. Tokens and payloads are never logged.
package amqp
