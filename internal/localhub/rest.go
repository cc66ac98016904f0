package localhub

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/directmethods/iotdevice/sas"
)

// websocketPath is where MQTT and AMQP over WebSockets are served.
const websocketPath = "/$iothub/websocket"

// httpHandler serves the HTTPS port: WebSockets and the REST API.
func (h *Hub) httpHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.enter() {
			errServiceUnavailable().write(w)
			return
		}
		defer h.wg.Done()
		if r.URL.Path == websocketPath {
			h.serveWebSocket(w, r)
			return
		}
		h.serveInvoke(w, r)
	})
}

// enter counts a request handler among the hub's goroutines; it reports
// false once the hub is closing.
func (h *Hub) enter() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.wg.Add(1)
	return true
}

// parseMethodsPath parses /twins/{id}/methods and
// /twins/{id}/modules/{mid}/methods, with or without one trailing slash,
// URL-decoding the ids.
func parseMethodsPath(escapedPath string) (deviceID, moduleID string, ok bool) {
	if strings.HasSuffix(escapedPath, "/methods/") {
		escapedPath = escapedPath[:len(escapedPath)-1]
	}
	segments := strings.Split(escapedPath, "/")
	var raw []string
	switch {
	case len(segments) == 4 && segments[0] == "" && segments[1] == "twins" && segments[3] == "methods":
		raw = []string{segments[2]}
	case len(segments) == 6 && segments[0] == "" && segments[1] == "twins" && segments[3] == "modules" && segments[5] == "methods":
		raw = []string{segments[2], segments[4]}
	default:
		return "", "", false
	}
	ids := make([]string, len(raw))
	for i, s := range raw {
		id, err := url.PathUnescape(s)
		if err != nil || id == "" {
			return "", "", false
		}
		ids[i] = id
	}
	if len(ids) == 2 {
		return ids[0], ids[1], true
	}
	return ids[0], "", true
}

// serveInvoke handles POST /twins/{id}[/modules/{mid}]/methods.
func (h *Hub) serveInvoke(w http.ResponseWriter, r *http.Request) {
	deviceID, moduleID, ok := parseMethodsPath(r.URL.EscapedPath())
	if !ok {
		errNoResource(r.Method, r.URL.Path).write(w)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		errMethodNotAllowed(r.Method).write(w)
		return
	}
	identity := identityName(deviceID, moduleID)
	log := h.log.With("identity", identity)
	if rerr := checkAPIVersion(r.URL.Query()); rerr != nil {
		rerr.write(w)
		return
	}
	target := sas.Resource(h.hostName, deviceID, moduleID)
	if err := h.reg.authorizeService(r.Header.Get("Authorization"), target, time.Now()); err != nil {
		log.Warn("rest: unauthorized", "reason", err.Error())
		errUnauthorized().write(w)
		return
	}
	req, rerr := readInvokeRequest(w, r)
	if rerr != nil {
		rerr.write(w)
		return
	}
	if _, ok := h.reg.lookup(deviceID); !ok {
		errDeviceNotFound(deviceID).write(w)
		return
	}
	if moduleID != "" {
		if _, ok := h.reg.lookup(identity); !ok {
			errModuleNotFound(deviceID, moduleID).write(w)
			return
		}
	}

	ctx := r.Context() // canceled when the client goes away or the hub closes
	start := time.Now()
	resp, err := h.router.invoke(ctx, identity, req.methodName, req.payload, req.connectTimeout, req.responseTimeout)
	attrs := []any{"method", req.methodName, "duration", time.Since(start).Round(time.Millisecond)}
	switch {
	case errors.Is(err, ErrDeviceNotOnline):
		log.Info("rest: invocation failed: device not online", attrs...)
		errDeviceNotOnline(req.connectTimeout).write(w)
		return
	case errors.Is(err, ErrResponseTimeout):
		log.Info("rest: invocation failed: no response", attrs...)
		errGatewayTimeout(req.responseTimeout).write(w)
		return
	case err != nil:
		log.Info("rest: invocation abandoned", append(attrs, "err", err)...)
		errServiceUnavailable().write(w)
		return
	}
	payload := json.RawMessage("null")
	if len(resp.payload) > 0 {
		if !json.Valid(resp.payload) {
			// The hub's handling of a non-JSON device body is UNCONFIRMED
			// (protocol.md 3.4); refusing it keeps the answer valid JSON.
			log.Warn("rest: device answered with a body that is not JSON", append(attrs, "status", resp.status)...)
			errServer("The device's response is not valid JSON.").write(w)
			return
		}
		payload = resp.payload
	}
	log.Info("rest: method invoked", append(attrs, "status", resp.status)...)
	body, err := json.Marshal(struct {
		Status  int             `json:"status"`
		Payload json.RawMessage `json:"payload"`
	}{resp.status, payload})
	if err != nil {
		errServer("The device's response could not be encoded.").write(w)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// readInvokeRequest reads at most maxRequestBody bytes of the body and
// validates it.
func readInvokeRequest(w http.ResponseWriter, r *http.Request) (invokeRequest, *restError) {
	tooLarge := errMessageTooLarge("The request body is larger than the 128 KB a method payload may have.")
	if r.ContentLength > maxRequestBody {
		return invokeRequest{}, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &maxErr):
		return invokeRequest{}, tooLarge
	case err != nil:
		return invokeRequest{}, errArgumentInvalid("The request body could not be read.")
	}
	return decodeInvokeBody(body)
}
