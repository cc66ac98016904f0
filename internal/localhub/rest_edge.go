package localhub

import (
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/directmethods/iotdevice/internal/sastoken"
	"github.com/directmethods/iotdevice/sas"
)

// edgeModuleIDHeader names the module that calls a method through an IoT
// Edge hub, as the official SDKs' method clients send it
// (azure-iot-sdk-node device/core/src/device_method/method_client.ts).
const edgeModuleIDHeader = "x-ms-edge-moduleId"

// authorizeInvoke authorizes POST /twins/{id}[/modules/{mid}]/methods.
//
// Without x-ms-edge-moduleId it is the service API: a supported
// api-version and a service token of a policy covering the target are
// required, and device or module tokens are refused.
//
// With the header it is the module-scoped call IoT Edge hub serves for
// module-to-module calls: the header names the calling module as
// {device}/{module}, and the token must be that module's own, signed with
// its key. The api-version may be left out, as the Node SDK's method client
// does and IoT Edge hub accepts; one that is given must be supported.
func (h *Hub) authorizeInvoke(r *http.Request, deviceID, moduleID string, log *slog.Logger) *restError {
	if callers := r.Header.Values(edgeModuleIDHeader); len(callers) > 0 {
		return h.authorizeModuleCall(r, callers, log)
	}
	if rerr := checkAPIVersion(r.URL.Query()); rerr != nil {
		return rerr
	}
	target := sas.Resource(h.hostName, deviceID, moduleID)
	if err := h.reg.authorizeService(r.Header.Get("Authorization"), target, time.Now()); err != nil {
		log.Warn("rest: unauthorized", "reason", err.Error())
		return errUnauthorized()
	}
	return nil
}

// authorizeModuleCall checks a module-scoped call: one header naming a
// registered module, whose own token the request carries.
func (h *Hub) authorizeModuleCall(r *http.Request, callers []string, log *slog.Logger) *restError {
	if _, given := r.URL.Query()["api-version"]; given {
		if rerr := checkAPIVersion(r.URL.Query()); rerr != nil {
			return rerr
		}
	}
	refuse := func(reason string) *restError {
		log.Warn("rest: module call unauthorized", "reason", reason)
		return errUnauthorized()
	}
	if len(callers) != 1 {
		return refuse(edgeModuleIDHeader + " given more than once")
	}
	deviceID, moduleID, ok := parseEdgeCaller(callers[0])
	if !ok {
		return refuse(edgeModuleIDHeader + " is not {device}/{module}")
	}
	id, ok := h.reg.lookup(identityName(deviceID, moduleID))
	if !ok {
		return refuse("the calling module is not registered")
	}
	token := r.Header.Get("Authorization")
	if t, err := sastoken.Parse(token); err == nil && t.KeyName != "" {
		return refuse("a module call carries the module's own token, not a policy's")
	}
	if _, err := h.reg.authenticateToken(id, token, time.Now()); err != nil {
		return refuse(err.Error())
	}
	log.Debug("rest: module call authorized", "caller", id.name())
	return nil
}

// parseEdgeCaller splits an x-ms-edge-moduleId value, "{device}/{module}",
// both ids valid.
func parseEdgeCaller(v string) (deviceID, moduleID string, ok bool) {
	deviceID, moduleID, ok = strings.Cut(v, "/")
	if !ok || sas.ValidateID(deviceID) != nil || sas.ValidateID(moduleID) != nil {
		return "", "", false
	}
	return deviceID, moduleID, true
}
