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
// credential, whose TLS client certificate authenticates), CleanSession 1
// (see connectPacket for why, unlike the C and C# SDKs), and the
// configured keep-alive, at most 1178 s: the hub drops a connection that
// stays silent for 1.5 times the keep-alive, and never waits longer than
// 1767 s. The C SDK reads a CONNACK refused with return
// code 2, 4 or 5 as credentials or an identity the hub does not accept,
// and code 3 (server unavailable) as a disabled device; so does this one.
//
// The Dial subscribes to $iothub/methods/POST/# at QoS 0 and returns only
// once the SUBACK has granted it. The hub publishes each request on
// $iothub/methods/POST/{method name}/?$rid={request id}; the method name
// is passed on as written and the request id is echoed unchanged.
// Responses are published on $iothub/methods/res/{status}/?$rid={request id}
// at QoS 1, so that an answer the hub did not acknowledge is known, or at
// QoS 0 with Options.AnswerAtMostOnce, as the C and Node.js SDKs do. IoT
// Hub has been seen to number request ids per connection, so an answer is
// only meaningful on the connection its request came on.
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
// Respond returns once its answer is written to the network; at QoS 1 the
// PUBACK is awaited apart, so a hub slow to acknowledge, or one that never
// does, holds no caller. At most 1024 answers await their PUBACK on a
// connection: beyond that the oldest is given up. Every answer written
// and not acknowledged before the connection ends, or given up, is
// reported once through transport.Config.AnswerLost. Close waits up to a
// second for the PUBACKs of answers already written, so that a deliberate
// close does not count them lost. Only a PUBACK confirms an answer: an
// acknowledgement of another type, or for an identifier nothing awaits, is
// ignored, and only the UNSUBACK Quiesce awaits ends the stream of
// requests.
//
// Every 16 KB written to the network must be taken within
// Options.PingTimeout (the keep-alive by default): a slow link carries
// large answers as long as it keeps moving, and a write that stops
// moving means the link is gone. The adapter sends PINGREQ once per
// keep-alive whatever else the connection carries, and expects the
// PINGRESP within Options.PingTimeout of the PINGREQ having been written,
// so answers that a kernel buffer absorbed but the hub never read cannot
// hide a dead link, and a link that stalls for less than the ping timeout
// costs nothing. A dead link is noticed within about twice the keep-alive.
//
// A packet from the hub larger than 256 KB (IoT Hub's MQTT limit), or one
// that is not valid MQTT 3.1.1, ends the connection with an error wrapping
// transport.ErrConnLost. Requests wait for Receive in a queue bounded by
// Options.QueueSize and Options.QueueBytes; one that does not fit is
// answered 503 at once. A message at QoS 1 on a topic the device did not
// subscribe to is neither delivered nor acknowledged, so that the hub keeps
// it for a client that asks for it; a QoS 1 request delivered again with a
// request id the connection has seen is acknowledged and not run again
// (IoT Hub sends requests at QoS 0: only a session holding them at QoS 1
// redelivers).
//
// The adapter only moves bytes: it never reconnects by itself; retry,
// dispatch, JSON validation and token renewal belong to the client
// (package device), which dials again when a Conn fails.
//
// # Concurrency
//
// Receive and Respond may each be called from many goroutines, concurrently
// with each other and with Close; each request goes to one Receive. One
// goroutine reads the network connection, in order; Close joins it.
// Writes have no goroutine of their own: the caller that finds no write
// in progress writes its packet, and those queued meanwhile, and hands
// the writing on once its own is out; the keep-alive runs on a timer. The reader never blocks on anything but
// the network: it queues each request and, when the queue is full, answers
// 503 at once. Because one goroutine reads the stream in order, every
// request the hub sent before an UNSUBACK is queued before Quiesce
// returns.
//
// # Errors
//
// Refused CONNACKs wrap transport.ErrUnauthorized (codes 2, 4, 5: IoT Hub
// refuses a wrong key and an identity it does not know alike, with 5, so
// the error names both and never wraps transport.ErrIdentityNotFound) or
// transport.ErrServerBusy (code 3); a lost connection, and a Respond
// whose write failed, at either QoS, wrap transport.ErrConnLost and the
// cause; a Respond whose context ended before its answer could go out
// returns the context's error, and the answer is not sent; a closed Conn
// returns errors wrapping net.ErrClosed; certificate failures keep their
// crypto/x509 error in the chain. Package device decides from these what
// to retry.
//
// # Logging
//
// Logs go to Config.Logger with the attribute transport=mqtt and the keys
// device_id, method, request_id, status and err: Info for connection
// changes, Debug per request, Warn for dropped or refused requests. Tokens
// and payloads are never logged.
package mqtt
