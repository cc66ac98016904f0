// Package ws opens the WebSocket byte streams that IoT Hub accepts at
// wss://{host}:443/$iothub/websocket, for MQTT (subprotocol "mqtt") and AMQP
// (subprotocol "AMQPWSB10"), and makes them a transport.Network for the
// adapters. Packages mqttws and amqpws plug that Network into the MQTT and
// AMQP Dialers; protocol adapters run over the returned net.Conn exactly as
// they run over TLS.
//
// The dial goes through an HTTP proxy with HTTP CONNECT when one applies
// (HTTPS_PROXY and NO_PROXY by default, or an explicit proxy function),
// speaks HTTP/1.1 only and always verifies the server's certificate.
//
// # Protocol
//
// Both protocols share the endpoint: path /$iothub/websocket on the
// HTTPS port, 443. Binary WebSocket messages carry the protocol's bytes
// with no framing of their own. The returned net.Conn reads them as one
// stream, so an MQTT packet or an AMQP frame may span messages. The C SDK
// asks for subprotocol "MQTT" and the others for "mqtt"; Dial compares the
// server's choice case-insensitively.
//
// Sources: https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub
// and https://learn.microsoft.com/azure/iot-hub/iot-hub-amqp-support (the
// WebSocket endpoints on port 443); Azure/azure-iot-sdk-c,
// iothub_client/src/iothubtransportmqtt_websockets.c and
// iothubtransportamqp_websockets.c (path, port, subprotocols);
// Azure/azure-iot-sdk-csharp, iothub/device/src/Transport/WebSocketConstants.cs.
//
// # Concurrency
//
// The returned net.Conn allows one concurrent Read and one concurrent Write,
// like any net.Conn; Close may be called from any goroutine.
//
// # Errors
//
// Dial errors wrap their cause: a certificate that fails verification is
// found with errors.As (x509.UnknownAuthorityError,
// *tls.CertificateVerificationError), a cancelled ctx with errors.Is.
// ErrSubprotocol reports a server that did not accept the subprotocol.
//
// # Logging
//
// The package does not log.
package ws
