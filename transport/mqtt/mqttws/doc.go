// Package mqttws carries IoT Hub direct methods over MQTT over WebSockets:
// wss://{host}:{Config.Port, or 443}/$iothub/websocket with subprotocol
// "mqtt", through Config.Proxy (HTTPS_PROXY and NO_PROXY when nil) and
// with Config.UserAgent on the upgrade request. Binary WebSocket messages
// carry the MQTT byte stream; the CONNECT is the same as over TLS.
//
// It is package mqtt with a different network underneath: NewDialer
// returns an *mqtt.Dialer, and everything package mqtt documents about
// connecting, concurrency, errors and logging holds.
//
// The package exists only to keep WebSocket code out of programs that do
// not use it: a program that speaks MQTT over TLS alone, such as
// examples/minimal, links neither the WebSocket library
// (github.com/coder/websocket) nor the module's WebSocket dialer, and CI
// checks that it does not. Were that no longer so, NewDialer would belong
// in package mqtt.
//
// Sources: "Communicate with an IoT hub using the MQTT protocol",
// https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub (MQTT
// over WebSockets on port 443); Azure/azure-iot-sdk-c,
// iothub_client/src/iothubtransportmqtt_websockets.c (path and port);
// Azure/azure-iot-sdk-csharp, iothub/device/src/Transport/WebSocketConstants.cs.
package mqttws
