// Package mqttwire holds the MQTT wire format of IoT Hub direct methods:
// the topics of requests and responses and the CONNECT username. The
// device adapter (transport/mqtt) writes and reads it; the local hub
// (internal/localhub) takes its topic names from here, so that both ends
// speak from one definition.
//
// # Protocol
//
// IoT Hub speaks MQTT 3.1.1 over TLS on port 8883, or over a WebSocket at
// wss://{host}:443/$iothub/websocket with subprotocol "mqtt". A device
// connects with client id "{device}" ("{device}/{module}" for a module),
// username "{hub host}/{client id}/?api-version={version}" with an
// optional "&DeviceClientType={user agent}", and its SAS token as password
// (none when a TLS client certificate authenticates it).
//
// It subscribes to "$iothub/methods/POST/#". The hub publishes each
// request on "$iothub/methods/POST/{method name}/?$rid={request id}" with a
// JSON or empty body; the device answers on
// "$iothub/methods/res/{status}/?$rid={request id}", status a decimal
// integer, body JSON or empty. The method name is written unencoded and
// the request id is opaque: the device echoes it as received. IoT Hub has
// been seen to number request ids per connection, from 1 after each
// CONNECT, so an id names a request only on the connection it arrived on.
//
// The SDKs take the name as written and the request id as all that follows
// "$rid=" (the C SDKs, the C# SDK); the Node.js SDK parses a query and so
// stops the id at the first '&'. ParseRequestTopic does the latter, which
// gives the same id for every topic the hub sends.
//
// # Sources
//
//   - Communicate with an IoT hub using the MQTT protocol:
//     https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub
//   - Understand and invoke direct methods from IoT Hub:
//     https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-direct-methods
//   - Azure/azure-iot-sdk-c, iothub_client/src/iothubtransport_mqtt_common.c
//     (client id, username, TOPIC_DEVICE_METHOD_SUBSCRIBE,
//     DEVICE_METHOD_RESPONSE_TOPIC, retrieveDeviceMethodRidInfo)
//   - Azure/azure-sdk-for-c, sdk/src/azure/iot/az_iot_hub_client.c and
//     az_iot_hub_client_methods.c (username, topic parsing)
//   - Azure/azure-iot-sdk-csharp,
//     iothub/device/src/Transport/Mqtt/MqttTransportHandler.cs
//   - Azure/azure-iot-sdk-node, device/transport/mqtt/src/mqtt.ts
//     (_parseMessage) and common/core/src/endpoint.ts (api-version
//     2021-04-12)
//   - nrfconnect/sdk-nrf pull request #2962 (request ids counted per
//     connection)
package mqttwire
