package hubtest

import (
	"fmt"
)

// EdgeEnvironment returns the IOTEDGE_ variables the IoT Edge runtime
// would give this module, for edge.NewModuleClientFromLookup (or the
// process environment and edge.NewModuleClient). The
// workload URI names the hub's workload API, and the IoT hub and gateway
// host names are the hub's, reached on its ports: set ClientOptions.Port
// (Hub.Port) as for any client of the hub. It needs a hub started with
// Options.Edge, and a module.
func (id *Identity) EdgeEnvironment() (map[string]string, error) {
	if id.moduleID == "" {
		return nil, fmt.Errorf("hubtest: %s is a device; only modules run on IoT Edge", id.deviceID)
	}
	env, err := id.hub.hub.EdgeEnvironment(id.name())
	if err != nil {
		return nil, fmt.Errorf("hubtest: %w (start the hub with Options.Edge)", err)
	}
	return env, nil
}

// SetParent makes the device a leaf device of the IoT Edge device edge, as
// IoT Hub's device scope does: the modules of edge may then call its
// methods through their edge hub, which reaches no device but its leaf
// devices.
func (id *Identity) SetParent(edge *Identity) error {
	if id.moduleID != "" || edge.moduleID != "" {
		return fmt.Errorf("hubtest: a leaf device and its edge device are devices, not modules")
	}
	if err := id.hub.hub.SetParent(id.deviceID, edge.deviceID); err != nil {
		return fmt.Errorf("hubtest: %w", err)
	}
	return nil
}
