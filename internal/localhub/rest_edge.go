package localhub

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/directmethods/iotdevice/internal/idcheck"
	"github.com/directmethods/iotdevice/internal/sastoken"
	"github.com/directmethods/iotdevice/sas"
)

// edgeModuleIDHeader names the module that calls a method through an IoT
// Edge hub, as the official SDKs' method clients send it
// (azure-iot-sdk-node device/core/src/device_method/method_client.ts).
const edgeModuleIDHeader = "x-ms-edge-moduleId"

// authorizeService authorizes the service API's
// POST /twins/{id}[/modules/{mid}]/methods: a supported api-version and a
// service token of a policy covering the target; device or module tokens
// are refused. A request with x-ms-edge-moduleId is served by
// serveEdgeInvoke instead.
func (h *Hub) authorizeServiceInvoke(r *http.Request, deviceID, moduleID string, log *slog.Logger) *restError {
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

// serveEdgeInvoke serves a method call that a module makes through its IoT
// Edge hub (a request with x-ms-edge-moduleId), as IoT Edge hub's
// TwinsController and InvokeMethodHandler serve it (Azure/iotedge,
// edge-hub/core/src/Microsoft.Azure.Devices.Edge.Hub.Http/controllers/TwinsController.cs
// and edge-hub/core/src/Microsoft.Azure.Devices.Edge.Hub.Core/InvokeMethodHandler.cs):
//
//   - the header names the calling module as {device}/{module} (else 400),
//     and the request carries that module's own token (else 401);
//   - api-version may be left out, as the Node SDK's method client does;
//     one that is given must be supported;
//   - the edge hub reaches only the clients connected to it: the modules of
//     the caller's device and the leaf devices whose parent it is. Any
//     other target is, to the edge hub, a client that never connects: the
//     call waits out its connect timeout and fails 404;
//   - errors are the edge hub's, {"message": …} with the HTTP status and
//     no IoT Hub error code: 404 for a target not connected within the
//     connect timeout, 504 for no answer within the response timeout.
func (h *Hub) serveEdgeInvoke(w http.ResponseWriter, r *http.Request, deviceID, moduleID string, log *slog.Logger) {
	caller, rerr := h.authenticateModuleCall(r, log)
	if rerr != nil {
		refuse(w, r, rerr)
		return
	}
	req, ok := h.readInvokeRequest(w, r)
	if !ok {
		return
	}
	target := identityName(deviceID, moduleID)
	log = log.With("caller", caller.name())
	ctx := r.Context() // canceled when the client goes away or the hub closes
	if !h.edgeReaches(caller, deviceID, moduleID) {
		log.Info("rest: edge call to a client outside the caller's edge hub", "method", req.methodName)
		timer := time.NewTimer(req.connectTimeout)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done(): // the caller left, or the hub is closing
			writeEdgeError(w, http.StatusServiceUnavailable, "The edge hub is shutting down")
			return
		}
		writeEdgeError(w, http.StatusNotFound, "Client "+target+" not found")
		return
	}
	start := time.Now()
	resp, err := h.router.invoke(ctx, target, req.methodName, req.payload, req.connectTimeout, req.responseTimeout)
	attrs := []any{"method", req.methodName, "duration", time.Since(start).Round(time.Millisecond)}
	switch {
	case errors.Is(err, ErrDeviceNotOnline):
		log.Info("rest: edge call failed: client not connected", attrs...)
		writeEdgeError(w, http.StatusNotFound, "Client "+target+" not found")
		return
	case errors.Is(err, ErrResponseTimeout):
		log.Info("rest: edge call failed: no response", attrs...)
		writeEdgeError(w, http.StatusGatewayTimeout, "Timed out waiting for device to respond to method request "+newTrackingID())
		return
	case errors.Is(err, ErrInvalidResponse):
		// The edge hub answers a response without a usable status with the
		// status 400000 and no payload (DeviceMessageHandler's
		// GenericBadRequest). UNCONFIRMED for the other answers this hub
		// cannot accept (an oversized payload); they are treated alike.
		log.Warn("rest: edge call: invalid device response", append(attrs, "err", err)...)
		resp = methodResponse{status: edgeGenericBadRequest}
	case err != nil:
		log.Info("rest: edge call abandoned", append(attrs, "err", err)...)
		writeEdgeError(w, http.StatusServiceUnavailable, "The edge hub is shutting down")
		return
	default:
		h.twins.active(target, time.Now())
	}
	log.Info("rest: edge call answered", append(attrs, "status", resp.status)...)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(methodResultBody(resp.status, resp.payload))
}

// edgeGenericBadRequest is the status the edge hub reports for a device
// answer without a usable status.
const edgeGenericBadRequest = 400000

// errEdge is an error answer in the edge hub's form.
func errEdge(status int, message string) *restError {
	return &restError{status: status, message: message, edge: true}
}

// errEdgeBadHeader is the edge hub's answer to a missing or malformed
// x-ms-edge-moduleId.
func errEdgeBadHeader() *restError {
	return errEdge(http.StatusBadRequest, "Invalid header value for "+edgeModuleIDHeader)
}

// edgeReaches reports whether the edge hub of caller's device reaches the
// target: a module of that device, or a leaf device whose parent it is.
func (h *Hub) edgeReaches(caller *identity, deviceID, moduleID string) bool {
	if moduleID != "" {
		return deviceID == caller.deviceID
	}
	return h.reg.parent(deviceID) == caller.deviceID
}

// writeEdgeError writes the edge hub's error answer: the status and
// {"message": …}.
func writeEdgeError(w http.ResponseWriter, status int, message string) {
	body, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{message})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// authenticateModuleCall checks a module-scoped call's header and token
// and returns the calling module.
func (h *Hub) authenticateModuleCall(r *http.Request, log *slog.Logger) (*identity, *restError) {
	if _, given := r.URL.Query()["api-version"]; given {
		if rerr := checkAPIVersion(r.URL.Query()); rerr != nil {
			return nil, rerr
		}
	}
	callers := r.Header.Values(edgeModuleIDHeader)
	if len(callers) != 1 {
		log.Warn("rest: module call refused", "reason", edgeModuleIDHeader+" given more than once")
		return nil, errEdgeBadHeader()
	}
	deviceID, moduleID, ok := parseEdgeCaller(callers[0])
	if !ok {
		log.Warn("rest: module call refused", "reason", edgeModuleIDHeader+" is not {device}/{module}")
		return nil, errEdgeBadHeader()
	}
	unauthorized := func(reason string) (*identity, *restError) {
		log.Warn("rest: module call unauthorized", "reason", reason)
		return nil, errEdge(http.StatusUnauthorized, "Unable to authenticate the module "+callers[0])
	}
	id, ok := h.reg.lookup(identityName(deviceID, moduleID))
	if !ok {
		return unauthorized("the calling module is not registered")
	}
	token := r.Header.Get("Authorization")
	if t, err := sastoken.Parse(token); err == nil && t.KeyName != "" {
		return unauthorized("a module call carries the module's own token, not a policy's")
	}
	if _, err := h.reg.authenticateToken(id, token, time.Now()); err != nil {
		return unauthorized(err.Error())
	}
	return id, nil
}

// parseEdgeCaller splits an x-ms-edge-moduleId value, "{device}/{module}",
// both ids valid.
func parseEdgeCaller(v string) (deviceID, moduleID string, ok bool) {
	deviceID, moduleID, ok = strings.Cut(v, "/")
	if !ok || idcheck.ID(deviceID) != nil || idcheck.ID(moduleID) != nil {
		return "", "", false
	}
	return deviceID, moduleID, true
}
