package localhub

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// edgeEnvAPIVersion is the workload API version the env files give.
const edgeEnvAPIVersion = "2019-01-30"

// ErrNoWorkload reports a hub that serves no workload API (neither
// Options.Dir nor Options.WorkloadSocket is set).
var ErrNoWorkload = errors.New("localhub: no workload API (set Dir or WorkloadSocket)")

// EnvFileName is the file WriteConnectionFiles writes a module's IoT Edge
// environment to: "dev_mod.env".
func EnvFileName(identity string) string {
	return strings.ReplaceAll(identity, "/", "_") + ".env"
}

// EdgeEnvironment returns the IOTEDGE_ variables the IoT Edge runtime
// would set for module identity ("dev/mod"), with this hub as both the IoT
// hub and the gateway and its workload API signing the module's tokens.
// edge.NewModuleClientFromLookup reads them directly.
func (h *Hub) EdgeEnvironment(identity string) (map[string]string, error) {
	if h.workload == nil {
		return nil, ErrNoWorkload
	}
	id, ok := h.reg.lookup(identity)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownIdentity, identity)
	}
	if id.moduleID == "" {
		return nil, fmt.Errorf("localhub: %q is a device; IoT Edge environments are for modules", identity)
	}
	return map[string]string{
		"IOTEDGE_WORKLOADURI":        h.WorkloadURI(),
		"IOTEDGE_DEVICEID":           id.deviceID,
		"IOTEDGE_MODULEID":           id.moduleID,
		"IOTEDGE_MODULEGENERATIONID": generationID(id),
		"IOTEDGE_IOTHUBHOSTNAME":     h.hostName,
		"IOTEDGE_GATEWAYHOSTNAME":    h.hostName,
		"IOTEDGE_APIVERSION":         edgeEnvAPIVersion,
		"IOTEDGE_AUTHSCHEME":         "sasToken",
	}, nil
}

// edgeEnvNames orders the lines of an env file.
var edgeEnvNames = []string{
	"IOTEDGE_WORKLOADURI", "IOTEDGE_DEVICEID", "IOTEDGE_MODULEID", "IOTEDGE_MODULEGENERATIONID",
	"IOTEDGE_IOTHUBHOSTNAME", "IOTEDGE_GATEWAYHOSTNAME", "IOTEDGE_APIVERSION", "IOTEDGE_AUTHSCHEME",
}

// writeEnvFiles writes {dev}_{mod}.env into dir for every module, when
// the hub serves a workload API: NAME=value lines a POSIX shell can
// source (values are quoted when they need it). They hold no secret.
func (h *Hub) writeEnvFiles(dir string) error {
	if h.workload == nil {
		return nil
	}
	for _, id := range h.reg.all() {
		if id.moduleID == "" || id.key == "" {
			continue
		}
		env, err := h.EdgeEnvironment(id.name())
		if err != nil {
			return err
		}
		var b strings.Builder
		for _, name := range edgeEnvNames {
			b.WriteString(name + "=" + shellValue(env[name]) + "\n")
		}
		if err := writeFileAtomic(filepath.Join(dir, EnvFileName(id.name())), []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// shellValue quotes v for a POSIX shell unless it needs no quoting.
func shellValue(v string) string {
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("/:._-+=,@%", c)) {
			return shellQuote(v)
		}
	}
	return v
}
