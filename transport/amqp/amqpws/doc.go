// Package amqpws carries IoT Hub direct methods over AMQP over WebSockets:
// wss://{host}:{port or 443}/$iothub/websocket with subprotocol
// "AMQPWSB10", through an HTTP proxy when one applies (protocol.md §5 and
// §6). Binary WebSocket messages carry the AMQP byte stream, SASL and CBS
// included, exactly as over TLS. The upgrade request goes through
// Config.Proxy (HTTPS_PROXY and NO_PROXY when nil) and carries
// Config.UserAgent.
//
// It is package amqp with a different network underneath: NewDialer
// returns an *amqp.Dialer. It lives in its own package so that a program
// which only uses AMQP over TLS does not link the HTTP client and the
// WebSocket library that it needs.
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
// (x509.UnknownAuthorityError), a server that refuses the subprotocol
// with errors.Is(err, ws.ErrSubprotocol).
//
// # Logging
//
// Connections log as package amqp documents, with the attribute
// transport=amqp-ws; this package adds no logs of its own.
package amqpws
