// Package ws opens the WebSocket byte streams that IoT Hub accepts at
// wss://{host}:443/$iothub/websocket, for MQTT (subprotocol "mqtt") and AMQP
// (subprotocol "AMQPWSB10"). Protocol adapters run over the returned
// net.Conn exactly as they run over TLS.
//
// The dial goes through an HTTP proxy with HTTP CONNECT when one applies
// (HTTPS_PROXY and NO_PROXY by default, or an explicit proxy function),
// speaks HTTP/1.1 only and always verifies the server's certificate.
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
