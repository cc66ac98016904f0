// Package provisioning registers a device with the Azure IoT Hub Device
// Provisioning Service (DPS), which tells it which hub it belongs to and
// under which device ID, so that a device manufactured with only an ID
// scope and a key (or an X.509 certificate) can go from the factory to
// serving direct methods:
//
//	key, _ := sas.DeriveDeviceKey(groupKey, registrationID) // done at the factory
//	pc, err := provisioning.NewSymmetricKeyClient(idScope, registrationID, key, nil)
//	result, err := pc.Register(ctx)
//	client, err := pc.NewDeviceClient(result, nil)
//	err = client.Run(ctx, mux)
//
// # Attestation
//
// NewSymmetricKeyClient takes the device's key: an individual
// enrollment's key, or, for a symmetric-key enrollment group, the key
// derived from the group's with sas.DeriveDeviceKey. Its tokens cover
// "{idScope}/registrations/{registrationID}" with key name "registration".
// NewX509Client takes the device's certificate: the registration ID is its
// subject's common name, and the TLS handshake authenticates it (an
// individual enrollment of that certificate, or a group of the CA that
// signed it). TPM attestation is not supported.
//
// # Protocol
//
// Register speaks MQTT 3.1.1 to DPS, over TLS on port 8883 or, with
// Options.Network set to mqttws.Network(), over WebSockets on port 443, on
// the same MQTT session as the device client (internal/mqttsession). It
// connects with client id {registration ID}, username
// "{idScope}/registrations/{registrationID}/api-version=2019-03-31",
// CleanSession 1, subscribes to $dps/registrations/res/# and publishes
// {"registrationId": …, "payload": …} to
// $dps/registrations/PUT/iotdps-register/?$rid={n}. While DPS answers 202
// (assigning), it polls $dps/registrations/GET/iotdps-get-operationstatus/
// with the operation ID, after the retry-after the answer gives; the 200
// answer with status "assigned" ends it. Requests and the subscription are
// at QoS 1, as the Node.js and C# SDKs send them.
//
// Sources:
//   - Use MQTT to communicate with DPS:
//     https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-dps
//   - Symmetric key attestation:
//     https://learn.microsoft.com/azure/iot-dps/concepts-symmetric-key-attestation
//   - How to send additional data (the registration payload):
//     https://learn.microsoft.com/azure/iot-dps/how-to-send-additional-data
//   - Azure/azure-iot-sdk-node, provisioning/transport/mqtt/src/mqtt.ts,
//     and Azure/azure-sdk-for-c, sdk/inc/azure/iot/az_iot_provisioning_client.h
//
// # Retries
//
// A 202 or 429 answer is retried after its retry-after (or
// DefaultPollInterval when it has none). Connection failures and 5xx
// answers are retried after Options.Backoff, exponential with full jitter,
// and a new connection resumes polling the operation it had started.
// Refusals end Register at once with an *Error: a 401 (a wrong key, a
// registration DPS does not know, or a disabled enrollment: DPS does not
// say which) wraps ErrUnauthorized, a registration whose status is
// "disabled" ErrDisabled, one that "failed" ErrAssignmentFailed. Register
// never retries past its context, and a context without a deadline gets
// DefaultTimeout.
//
// # When to register again
//
// DPS limits registrations, and its guidance is to register once and
// cache the result: a Result is JSON (encoding/json), and ParseResult reads
// it back. Register again when the cached result cannot be used: the hub
// refuses the identity (device.Client.Run returns an *device.Error whose
// Code is device.CodeUnauthorized or device.CodeIdentityNotFound: the
// device may have been moved to another hub, re-keyed or deleted), the
// hub's name no longer resolves, or the device is reset to factory state.
// Registering again with the same enrollment returns the same hub and
// device unless the enrollment changed.
//
// # Concurrency
//
// A Client is safe for concurrent use; each Register uses a connection of
// its own, closed before it returns, and starts no goroutine that outlives
// it.
//
// # Logging
//
// Options.Logger gets Info for each registration's outcome and Warn for
// retries, with the keys registration_id, status, attempt, delay and err.
// Keys, tokens and payloads are never logged.
package provisioning
