// Package mqtt carries IoT Hub direct methods over MQTT 3.1.1 on TLS port
// 8883. Its Dialer implements transport.Dialer: a small MQTT session of
// its own (CONNECT, one subscription, answers, keep-alive) on the packet
// codec of github.com/eclipse/paho.mqtt.golang (package packets). paho's
// client is not used: it links its own WebSocket and HTTP proxy stack
// whether or not a program uses them, about a megabyte of every ARM
// binary, and runs message callbacks on its router goroutine.
//
// MQTT over WebSockets (wss://{host}:443/$iothub/websocket, subprotocol
// "mqtt") is in package mqttws, which plugs a WebSocket Network into this
// package's Dialer. Keeping it apart means a program that only uses MQTT
// over TLS links neither an HTTP client nor a WebSocket library.
//
// # Protocol
//
// A Dial sends CONNECT with client id "{device}[/{module}]", username
// "{hub}/{device}[/{module}]/?api-version=2021-04-12" (with
// "&DeviceClientType={Config.UserAgent}" when set; it names the hub even
// through a gateway), the SAS token as password (none with a certificate
// credential, whose TLS client certificate authenticates), CleanSession 0,
// so that the hub keeps the subscription across connections, and the
// configured keep-alive; the hub drops a connection that stays silent for
// 1.5 times the keep-alive. The C SDK reads a CONNACK refused with return
// code 2, 4 or 5 as credentials or an identity the hub does not accept,
// and code 3 (server unavailable) as a disabled device; so does this one.
//
// The Dial subscribes to $iothub/methods/POST/# at QoS 0 and returns only
// once the SUBACK has granted it. The hub publishes each request on
// $iothub/methods/POST/{method name}/?$rid={request id}; the method name
// is passed on as written and the request id is echoed unchanged.
// Responses are published on $iothub/methods/res/{status}/?$rid={request id}
// at QoS 1, so that Respond reports an answer delivered only once the hub
// acknowledged it, or at QoS 0 with Options.AnswerAtMostOnce, as the C and
// Node.js SDKs do. IoT Hub has been seen to number request ids per
// connection, so an answer is only meaningful on the connection its
// request came on.
//
// Sources:
//
//   - Communicate with an IoT hub using the MQTT protocol:
//     https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub
//     (CONNECT fields, CleanSession, keep-alive, method topics)
//   - Understand and invoke direct methods from IoT Hub:
//     https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-direct-methods
//   - Azure/azure-iot-sdk-c, iothub_client/src/iothubtransport_mqtt_common.c
//     (CONNACK codes, QoS of subscription and answers)
//   - Azure/azure-iot-sdk-node, device/transport/mqtt/src/mqtt.ts (QoS of
//     answers) and common/core/src/endpoint.ts (api-version 2021-04-12)
//   - nrfconnect/sdk-nrf pull request #2962 (request ids counted per
//     connection)
//
// # Behaviour
//
// Every write to the network is bounded by Options.PingTimeout: a write
// that takes longer means the link is gone. When nothing has been sent or
// received for the keep-alive, the adapter sends PINGREQ; no PINGRESP
// within Options.PingTimeout means the link is gone too. A packet from the
// hub larger than 256 KB (IoT Hub's MQTT limit), or one that is not valid
// MQTT 3.1.1, ends the connection with an error wrapping
// transport.ErrConnLost.
//
// The adapter only moves bytes: it never reconnects by itself; retry,
// dispatch, JSON validation and token renewal belong to the client
// (package device), which dials again when a Conn fails.
//
// # Concurrency
//
// One goroutine calls Receive; Respond may be called from many goroutines,
// concurrently with Receive and Close. Two goroutines own the network
// connection, one reading and one writing; Close joins them. The reader
// never blocks on anything but the network: it queues each request
// (Options.QueueSize) and, when the queue is full, answers 503 at once.
// Because one goroutine reads the stream in order, every request the hub
// sent before an UNSUBACK is queued before Quiesce returns.
//
// # Errors
//
// Refused CONNACKs wrap transport.ErrUnauthorized (codes 2, 4, 5: IoT Hub
// refuses a wrong key and an identity it does not know alike, with 5, so
// the error names both and never wraps transport.ErrIdentityNotFound) or
// transport.ErrServerBusy (code 3); a lost connection wraps
// transport.ErrConnLost and its cause; a closed Conn returns errors wrapping
// net.ErrClosed; certificate failures keep their crypto/x509 error in the
// chain. Package device decides from these what to retry.
//
// # Logging
//
// Logs go to Config.Logger with the attribute transport=mqtt and the keys
// device_id, method, request_id, status and err: Info for connection
// changes, Debug per request, Warn for dropped or refused requests. Tokens
// and payloads are never logged.
package mqtt
