// Package edge runs a device.Client as an Azure IoT Edge module: it builds
// the client from the environment the IoT Edge runtime sets
// (NewModuleClient), with tokens signed by the runtime's workload API and
// the edge hub trusted through the runtime's trust bundle, and it makes
// module-to-module method calls through the edge hub (MethodInvoker).
//
//	client, err := edge.NewModuleClient(ctx, nil)
//	...
//	err = client.Run(ctx, mux)
//
// It is a package of its own because it needs an HTTP client (net/http),
// which would otherwise add half a megabyte to every device program.
//
// Sources:
//
//   - Azure IoT Edge documentation: https://learn.microsoft.com/azure/iot-edge/
//   - Azure/azure-iot-sdk-node, device/core/src/module_client.ts
//     (fromEnvironment) and device/core/src/device_method/method_client.ts
//     (x-ms-edge-moduleId)
//   - Azure/iotedge,
//     edge-hub/core/src/Microsoft.Azure.Devices.Edge.Hub.Http/controllers/TwinsController.cs
//     (module-to-module calls and their errors)
package edge
