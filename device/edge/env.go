package edge

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/directmethods/iotdevice/device"
)

// Names of the variables the IoT Edge runtime sets for a module (Azure
// IoT Edge docs; azure-iot-sdk-node device/core/src/module_client.ts
// fromEnvironment), and of the IoT Edge simulator's.
const (
	envWorkloadURI      = "IOTEDGE_WORKLOADURI"
	envDeviceID         = "IOTEDGE_DEVICEID"
	envModuleID         = "IOTEDGE_MODULEID"
	envGenerationID     = "IOTEDGE_MODULEGENERATIONID"
	envHubHostName      = "IOTEDGE_IOTHUBHOSTNAME"
	envGatewayHostName  = "IOTEDGE_GATEWAYHOSTNAME"
	envAPIVersion       = "IOTEDGE_APIVERSION"
	envAuthScheme       = "IOTEDGE_AUTHSCHEME"
	envConnectionString = "EdgeHubConnectionString"
	envCAFile           = "EdgeModuleCACertificateFile"
)

// defaultWorkloadAPIVersion is the workload API version sent when
// IOTEDGE_APIVERSION is not set: the first one, which every runtime
// serves (Azure/iotedge edgelet/api/workloadVersion_2018_06_28.yaml).
const defaultWorkloadAPIVersion = "2018-06-28"

// edgeEnvironment is what the runtime (or the simulator) tells a module.
type edgeEnvironment struct {
	workloadURI, deviceID, moduleID, generationID string
	hubHostName, gatewayHostName, apiVersion      string
	// The simulator's form; when connectionString is set the rest is empty.
	connectionString, caFile string
}

// readEdgeEnvironment reads and checks the variables. Every missing
// required variable is named in one error; values are never echoed but
// for the auth scheme, which is no secret.
func readEdgeEnvironment(lookup func(string) (string, bool)) (*edgeEnvironment, error) {
	get := func(name string) string {
		v, _ := lookup(name)
		return strings.TrimSpace(v)
	}
	if cs := get(envConnectionString); cs != "" {
		return &edgeEnvironment{connectionString: cs, caFile: get(envCAFile)}, nil
	}
	env := &edgeEnvironment{
		workloadURI: get(envWorkloadURI), deviceID: get(envDeviceID), moduleID: get(envModuleID),
		generationID: get(envGenerationID), hubHostName: get(envHubHostName),
		gatewayHostName: get(envGatewayHostName), apiVersion: get(envAPIVersion),
	}
	scheme := get(envAuthScheme)
	var missing []string
	for _, v := range []struct{ name, value string }{
		{envWorkloadURI, env.workloadURI}, {envDeviceID, env.deviceID}, {envModuleID, env.moduleID},
		{envGenerationID, env.generationID}, {envHubHostName, env.hubHostName}, {envAuthScheme, scheme},
	} {
		if v.value == "" {
			missing = append(missing, v.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: not an IoT Edge module environment: %s not set (nor %s)", device.ErrInvalidConfig, strings.Join(missing, ", "), envConnectionString)
	}
	if scheme != "sasToken" {
		return nil, fmt.Errorf("%w: %s is %q; only sasToken is supported", device.ErrInvalidConfig, envAuthScheme, clipValue(scheme))
	}
	if env.apiVersion == "" {
		env.apiVersion = defaultWorkloadAPIVersion
	}
	return env, nil
}

// clipValue shortens a value quoted in an error.
func clipValue(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
