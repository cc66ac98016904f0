// Package amqpws carries IoT Hub direct methods over AMQP over WebSockets:
// wss://{host}:{Config.Port, or 443}/$iothub/websocket with subprotocol
// "AMQPWSB10", through Config.Proxy (HTTPS_PROXY and NO_PROXY when nil)
// and with Config.UserAgent on the upgrade request. Binary WebSocket
// messages carry the AMQP byte stream, SASL and CBS included, exactly as
// over TLS.
//
// It is package amqp with a different network underneath: NewDialer
// returns an *amqp.Dialer.
//
// The package exists only to keep WebSocket code out of programs that do
// not use it: a program that speaks AMQP over TLS alone links neither the
// WebSocket library (github.com/coder/websocket) nor the module's
// WebSocket dialer, and CI checks that package amqp does not. Were that
// no longer so, NewDialer would belong in package amqp.
//
// # Concurrency
//
// As package amqp documents: the Dialer is safe for concurrent use, and
// each Conn runs the goroutines of an AMQP Conn, joined by Close.
//
// # Errors
//
// As package amqp documents. A failed upgrade keeps its cause in the
// chain: a certificate that fails verification is found with errors.As
// (x509.UnknownAuthorityError); a server that does not accept the
// subprotocol fails the dial with an error that says so.
//
// # Logging
//
// Connections log as package amqp documents, with the attribute
// transport=amqp-ws; this package adds no logs of its own.
//
// Sources: "Communicate with your IoT hub by using the AMQP protocol",
// https://learn.microsoft.com/azure/iot-hub/iot-hub-amqp-support;
// Azure/azure-iot-sdk-c, iothub_client/src/iothubtransportamqp_websockets.c
// (path, port and subprotocol); Azure/azure-iot-sdk-node,
// device/transport/amqp/src/amqp_ws.ts.
package amqpws
