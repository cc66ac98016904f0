package localhub

import (
	"fmt"
	"slices"
	"strings"
)

// supportedAPIVersions are the REST api-version values the hub accepts: the
// ones the official service SDKs send for direct methods.
//   - 2021-04-12: the C# service SDK (ClientApiVersionHelper), the Node SDK
//     (common/core/src/endpoint.ts) and the IoT Hub REST reference.
//   - 2020-09-30: the C SDK (iothub_devicemethod.c) and the Go iotservice
//     package.
//   - 2020-03-13: earlier C# service SDKs (Azure/Industrial-IoT PR #709).
//   - 2018-06-30: the Java SDKs (MicrosoftDocs/azure-docs issue #17903).
//
// IoT Hub answers a missing or unknown one with 400 InvalidProtocolVersion
// (MicrosoftDocs/azure-docs issue #11156, Azure/azure-iot-sdk-node issue
// #617, Azure/Industrial-IoT PR #708). Only the service API checks it: the
// WebSocket upgrade on /$iothub/websocket does not, because device SDKs do
// not always send one there.
var supportedAPIVersions = []string{"2018-06-30", "2020-03-13", "2020-09-30", "2021-04-12"}

// checkAPIVersion requires exactly one api-version query parameter with a
// supported value. The name is matched exactly, as written by the SDKs.
func checkAPIVersion(query map[string][]string) *restError {
	return checkAPIVersionOf(query, supportedAPIVersions)
}

// checkAPIVersionOf is checkAPIVersion with the given supported versions.
func checkAPIVersionOf(query map[string][]string, supported []string) *restError {
	values := query["api-version"]
	switch {
	case len(values) == 0:
		return errInvalidProtocolVersion("The api-version query parameter is required.")
	case len(values) > 1:
		return errInvalidProtocolVersion("The api-version query parameter is given more than once.")
	case !slices.Contains(supported, values[0]):
		return errInvalidProtocolVersion(fmt.Sprintf("api-version %q is not supported; use one of %s.",
			clip(values[0]), strings.Join(supported, ", ")))
	}
	return nil
}
