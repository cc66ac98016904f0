// Package amqpwire holds the names and addresses of IoT Hub direct
// methods over AMQP 1.0: the claims-based-security (CBS) put-token
// exchange, the method links and the properties of method messages. The
// device adapter (transport/amqp, built on github.com/Azure/go-amqp) and
// the local hub (internal/localhub, built on internal/amqp) both take them
// from here. The package depends on neither AMQP implementation.
//
// # Protocol
//
// IoT Hub speaks AMQP 1.0 over TLS on port 5671, or over a WebSocket at
// wss://{host}:443/$iothub/websocket with subprotocol "AMQPWSB10", whose
// binary messages carry the same byte stream, SASL and CBS included. The
// open frame names the hub's host.
//
// A device that authenticates with a SAS token presents it on the $cbs
// node: a sender and a receiver attached to "$cbs", and a request whose
// body is the token as an amqp-value string, with the application
// properties operation=put-token, type=servicebus.windows.net:sastoken
// (the C# SDK sends azure-devices.net:sastoken) and name={audience}, the
// resource "{host}/devices/{device}[/modules/{module}]". The response
// carries the request's message-id, in its own type, as correlation-id,
// and the application properties status-code (an int; 200 is success,
// which is all the Node.js SDK accepts) and status-description. Another
// put-token on the same links renews the token without reconnecting. A
// device that authenticates with an X.509 certificate opens no SASL layer
// and no CBS links: the TLS client certificate authenticates it.
//
// Method requests then flow on two links, both on
// "/devices/{device}[/modules/{module}]/methods/devicebound": the
// device's receiver takes requests, its sender returns responses. Both
// carry the attach properties com.microsoft:api-version,
// com.microsoft:channel-correlation-id (the same value on both, as the C#
// and Node.js SDKs send it; the local hub pairs the links by it) and,
// optionally, com.microsoft:client-version.
// A request carries a uuid correlation-id, the application property
// IoThub-methodname (a string) and the payload in one data section; the C
// SDK rejects a request without any of them with amqp:decode-error. A
// response echoes the correlation-id and carries IoThub-status, an int32,
// and the payload in one data section.
//
// # Sources
//
//   - Communicate with your IoT hub by using the AMQP protocol:
//     https://learn.microsoft.com/azure/iot-hub/iot-hub-amqp-support
//   - Control access to IoT Hub with shared access signatures:
//     https://learn.microsoft.com/azure/iot-hub/authenticate-authorize-sas
//     (claims-based security)
//   - Azure/azure-iot-sdk-c, iothub_client/src/iothubtransportamqp_methods.c
//     (method links, attach properties, on_message_received),
//     iothub_client/src/iothubtransport_amqp_cbs_auth.c (audience, token
//     type, renewal) and iothub_client/src/iothubtransportamqp_websockets.c
//   - Azure/azure-uamqp-c, src/cbs.c and src/amqp_management.c (put-token
//     request and response)
//   - Azure/azure-iot-sdk-node, common/transport/amqp/src/amqp_cbs.ts
//     (put-token, success is status 200) and
//     device/transport/amqp/src/amqp_device_method_client.ts (method
//     links), common/core/src/endpoint.ts (api-version 2021-04-12)
//   - Azure/azure-iot-sdk-csharp,
//     iothub/device/src/Transport/AmqpIot/AmqpIotConstants.cs and
//     iothub/device/src/Transport/Amqp/AmqpUnit.cs (token type, one
//     channel correlation id for both links)
package amqpwire
