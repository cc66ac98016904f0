// Package localhub is a local, TLS-only stand-in for the device side of
// Azure IoT Hub and its REST API for invoking direct methods, good enough
// for the official device SDKs and this module's own device client to talk
// to it unchanged.
//
// A Hub serves MQTT 3.1.1 over TLS on its MQTT port, AMQP 1.0 over TLS on
// its AMQP port, MQTT and AMQP over WebSockets on its HTTPS port at
// /$iothub/websocket (subprotocols "mqtt" and "AMQPWSB10"), and the service
// REST API (POST /twins/{id}[/modules/{mid}]/methods) on the same HTTPS
// port. Over AMQP, devices authenticate with a put-token on the $cbs node,
// SASL PLAIN or a client certificate, and receive method requests on their
// methods/devicebound links. It keeps
// an identity registry (devices and modules with symmetric keys, X.509
// devices by certificate thumbprint, and the iothubowner service policy) and
// routes each method invocation to exactly one identity.
//
// For IoT Plug and Play it records the model ID each identity announces
// (MQTT username model-id, AMQP link property com.microsoft:model-id) and
// serves GET /twins/{id}[/modules/{mid}] (the twin, with modelId and
// connectionState), GET /digitaltwins/{id} ($dtId and $metadata.$model)
// and the digital twin commands, POST
// /digitaltwins/{id}[/components/{component}]/commands/{command}, which
// invoke the methods "{component}*{command}" or "{command}".
//
// For a back end that reaches a fleet it serves twin tags (PATCH and PUT
// /twins/{id}[/modules/{mid}] with If-Match), queries (POST /devices/query:
// SELECT * FROM devices, devices.modules or devices.jobs, paged) and jobs
// (PUT, GET and POST .../cancel on /jobs/v2/{id}, GET /jobs/v2/query) that
// call a method on the devices a condition selects, offline ones as soon
// as they connect within the job's time (see jobs.go). With Options.Tier
// it enforces an IoT Hub tier's throttles and job limits (see Tier). With
// Options.Dir, tags and jobs persist across restarts.
//
// # IoT Edge
//
// With Options.Dir (or Options.WorkloadSocket) set, the hub also plays
// the IoT Edge runtime for its modules: a workload API on a unix socket
// signs tokens with each module's key and hands out the hub's CA as the
// trust bundle, EdgeEnvironment gives the IOTEDGE_ variables of a module
// (WriteConnectionFiles writes them to <device>_<module>.env), and the REST
// API serves module-to-module calls: a module's own token with a matching
// x-ms-edge-moduleId header, as IoT Edge hub serves them. Like the edge
// hub, such a call reaches only the modules of the caller's device and the
// leaf devices whose parent that device is (SetParent); any other target
// fails 404 after the connect timeout, and errors take the edge hub's form,
// {"message": …} without an IoT Hub error code. Without the header, module
// tokens are refused as IoT Hub's service API refuses them.
//
// # Device Provisioning Service
//
// On the same listeners the hub plays the Azure IoT Hub Device
// Provisioning Service (DPS), with itself as the only linked IoT hub. Its
// ID scope ("0ne" and 8 hex digits) and service key are made once and,
// with Options.Dir, kept in dps.json with the enrollments, registration
// records and operations, and written to idscope.txt and dps.txt.
//
//   - Devices register over MQTT (a CONNECT whose username is
//     "{idScope}/registrations/{registrationId}/api-version=…", then
//     $dps/registrations/PUT/iotdps-register and
//     $dps/registrations/GET/iotdps-get-operationstatus, answered on
//     $dps/registrations/res/#), MQTT over WebSockets, or HTTPS (PUT
//     /{idScope}/registrations/{id}/register and GET
//     /{idScope}/registrations/{id}/operations/{operationId}).
//   - A device attests with a SAS token for
//     "{idScope}/registrations/{id}", key name "registration", signed by
//     its individual enrollment's key or the key derived from its group's,
//     or with a client certificate whose CN is its registration id,
//     registered in its enrollment or chaining to its group's signing
//     certificate. Every refusal is the same 401.
//   - The first answer is 202 "assigning" with an operation id and a
//     retry-after (DPSOptions.RetryAfter); polls before it has passed get
//     202 again, later ones 200 "assigned" with the registration state.
//     The assignment creates or updates the device in the registry with
//     the key it attested with, or with trust in its certificate (by
//     thumbprint, or by certificate authority for a group), so that it
//     can connect at once. An enrollment with a custom allocation policy
//     calls its webhook with the device's payload, and the webhook's
//     payload goes back to the device.
//   - Registrations beyond DPSOptions.RegistrationsPerMinute get 429 with
//     a retry-after.
//   - The service API serves PUT, GET and DELETE
//     /enrollments/{registrationId} and /enrollmentGroups/{groupId}
//     (symmetric-key and X.509 attestation, provisioningStatus, etags with
//     If-Match), and GET and DELETE /registrations/{registrationId}, to a
//     provisioningserviceowner token. Bulk operations, queries and TPM
//     attestation are not served.
//
// Errors take DPS's form: an HTTP status (in the topic over MQTT) and
// {"errorCode":…,"trackingId":…,"message":…,"timestampUtc":…}.
//
// # Connection limits
//
// On the HTTPS port, a peer that has not authenticated cannot hold a
// connection more than 30 s from its accept (TLS handshake, headers and body
// included); a request refused before its body is read is answered at once
// and its connection closed. A kept-alive connection is closed after 90 s
// idle. A WebSocket upgrade hands the connection to its MQTT or AMQP
// session, which applies its own limits.
//
// # Concurrency
//
// A Hub and a ServiceClient are safe for concurrent use. Close ends every
// listener and connection, stops the jobs' runners (their jobs resume at
// the next start from Options.Dir) and returns once all goroutines of the
// hub have ended.
//
// # Errors
//
// The REST API answers errors as the real hub does: an HTTP status, an
// iothub-errorcode header and a two-level JSON body. ServiceClient turns them
// into *ServiceError. Start reports a port it cannot bind as *ListenError.
//
// # Logging
//
// Options.Logger receives connections, authentication failures (with the
// reason, never the token) and invocations (method, identity, status,
// duration). Payloads, keys and tokens are never logged.
package localhub
