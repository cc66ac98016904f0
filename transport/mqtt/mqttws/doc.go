// Package mqttws carries IoT Hub direct methods over MQTT over WebSockets:
// wss://{host}:{port or 443}/$iothub/websocket with subprotocol "mqtt",
// through an HTTP proxy when one applies (protocol.md §3 and §4).
//
// It is package mqtt with a different network underneath: NewDialer
// returns an *mqtt.Dialer, and everything package mqtt documents about
// connecting, concurrency, errors and logging holds. It lives in its own
// package so that a program which only uses MQTT over TLS does not link
// the HTTP client and the WebSocket library that it needs.
package mqttws
