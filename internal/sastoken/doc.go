// Package sastoken is the shared access signature (SAS) token format of
// IoT Hub, both ways: Sign makes a token, Parse reads one, and the hub
// side checks it with Verify and Covers. Package sas exports Sign and the
// claims of a parsed token to users; the local hub (internal/localhub)
// and the in-memory transporttest.Fake verify tokens with this package.
//
// # Format
//
// A token reads "SharedAccessSignature sr={resource}&sig={signature}&se={expiry}",
// with "&skn={policy}" when a shared access policy's key signed it. se is
// the expiry in seconds since the Unix epoch. The signature is the base64
// HMAC-SHA256, keyed with the base64-decoded shared access key, of
// "{sr}\n{se}", where sr is exactly as the token carries it: URL-encoded
// by most SDKs, raw by the C SDK, with escapes in either case. Verify
// therefore signs sr as received, and Parse decodes sig, se and skn but
// keeps sr's encoded form next to its decoded one. SDKs write the fields
// in different orders and encode sig differently; Parse accepts any order,
// field names in any case, and ignores unknown fields, as the hub's own
// parser does. A token stays valid for MaxClockSkew after its expiry.
//
// The resource names what the token grants access to: the hub's host
// name followed by a path, such as "{host}/devices/{device}" or
// "{host}/devices/{device}/modules/{module}". It covers every resource it
// is a prefix of by whole path segments; the host compares
// case-insensitively, device and module ids case-sensitively.
//
// # Sources
//
//   - Control access to IoT Hub with shared access signatures:
//     https://learn.microsoft.com/azure/iot-hub/authenticate-authorize-sas
//   - Azure/azure-iot-sdk-csharp,
//     iothub/service/src/Common/Security/SharedAccessSignature.cs and
//     SharedAccessSignatureConstants.cs (the service's parser: the
//     signature over the encoded audience, field names matched
//     case-insensitively, MaxClockSkew of 5 minutes)
//   - Azure/azure-c-shared-utility, src/sastoken.c (the C SDK signs sr
//     unencoded)
//   - Azure/azure-sdk-for-c, sdk/src/azure/iot/az_iot_hub_client_sas.c,
//     and Azure/azure-iot-sdk-node, common/core/src/shared_access_signature.ts
//     (field order and encodings)
package sastoken
