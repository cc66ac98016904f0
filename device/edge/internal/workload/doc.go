// Package workload is a client of the IoT Edge workload API: the HTTP
// service, reached over a unix socket or TCP, through which the IoT Edge
// runtime signs a module's SAS tokens with the module's key (which the
// module never sees) and hands out the trust bundle that verifies the edge
// hub's certificate.
//
// The requests are those of the official SDKs (azure-iot-sdk-node
// device/core/src/iotedge_authentication_provider.ts; the workload API's
// own description in Azure/iotedge edgelet/api/workloadVersion_2019_01_30.yaml):
//
//	POST /modules/{moduleId}/genid/{generationId}/sign?api-version={v}
//	     {"keyId":"primary","algo":"HMACSHA256","data":"<base64>"} → {"digest":"<base64>"}
//	GET  /trust-bundle?api-version={v} → {"certificate":"<PEM>"}
//
// Package edge builds on it (edge.NewModuleClient); use
// it directly only to sign or fetch something else.
//
// # Errors
//
// Every failed call returns an *Error naming the call ("sign" or
// "trust-bundle") and, when the runtime answered, its HTTP status. A
// connection that could not be made has StatusCode 0 and wraps the network
// error.
package workload
