package localhub

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// websocketPath is where MQTT and AMQP over WebSockets are served.
const websocketPath = "/$iothub/websocket"

// httpHandler serves the HTTPS port: WebSockets and the REST API.
func (h *Hub) httpHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.enter() {
			refuse(w, r, errServiceUnavailable())
			return
		}
		defer h.wg.Done()
		if r.URL.Path == websocketPath {
			h.serveWebSocket(w, r)
			return
		}
		if h.serveDPS(w, r) { // the Device Provisioning Service (dps_https.go)
			return
		}
		if h.serveTwin(w, r) || h.serveDigitalTwin(w, r) {
			return
		}
		if h.serveJobs(w, r) || h.serveDeviceQuery(w, r) {
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
		refuse(w, r, errNoResource(r.Method, r.URL.Path))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		refuse(w, r, errMethodNotAllowed(r.Method))
		return
	}
	identity := identityName(deviceID, moduleID)
	log := h.log.With("identity", identity)
	if len(r.Header.Values(edgeModuleIDHeader)) > 0 {
		h.serveEdgeInvoke(w, r, deviceID, moduleID, log)
		return
	}
	if rerr := h.authorizeServiceInvoke(r, deviceID, moduleID, log); rerr != nil {
		refuse(w, r, rerr)
		return
	}
	req, ok := h.readInvokeRequest(w, r)
	if !ok {
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

	if !h.admit(w, r, h.throttle.methods, methodMeters(len(req.payload)), "direct methods") {
		return
	}
	ctx := r.Context() // canceled when the client goes away or the hub closes
	start := time.Now()
	resp, err := h.router.invoke(ctx, identity, req.methodName, req.payload, req.connectTimeout, req.responseTimeout)
	attrs := []any{"method", req.methodName, "duration", time.Since(start).Round(time.Millisecond)}
	if rerr := h.invocationOutcome(log, identity, req, err, attrs); rerr != nil {
		rerr.write(w)
		return
	}
	// The device's bytes go to the caller unchanged, JSON or not, as IoT
	// Hub passes them (see methodResultBody).
	if len(resp.payload) > 0 && !json.Valid(resp.payload) {
		log.Warn("rest: device answered with a body that is not JSON; passed through", append(attrs, "status", resp.status)...)
	}
	log.Info("rest: method invoked", append(attrs, "status", resp.status)...)
	body := methodResultBody(resp.status, resp.payload)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// readInvokeRequest reads and decodes the body of an authorized method
// invocation. On failure it has answered and returns false.
func (h *Hub) readInvokeRequest(w http.ResponseWriter, r *http.Request) (invokeRequest, bool) {
	raw, ok := h.readAuthenticatedBody(w, r)
	if !ok {
		return invokeRequest{}, false
	}
	req, rerr := decodeInvokeBody(raw)
	if rerr != nil {
		rerr.write(w)
		return invokeRequest{}, false
	}
	return req, true
}

// readAuthenticatedBody reads the body of an authorized request under a
// deadline, then frees the connection from the guard that bounds
// unauthenticated peers: no read deadline may cut the call while it waits
// for the device. On failure it has answered and returns false.
func (h *Hub) readAuthenticatedBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(h.limits.body))
	raw, rerr := readBody(w, r)
	if rerr != nil {
		refuse(w, r, rerr)
		return nil, false
	}
	requestGuard(r).lift()
	_ = rc.SetReadDeadline(time.Time{})
	return raw, true
}

// readBody reads at most maxRequestBody bytes of the body.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, *restError) {
	tooLarge := errMessageTooLarge("The request body is larger than the 128 KB a method payload may have.")
	if r.ContentLength > maxRequestBody {
		return nil, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &maxErr):
		return nil, tooLarge
	case err != nil:
		return nil, errArgumentInvalid("The request body could not be read.")
	}
	return body, nil
}

// refuse answers a request whose body has not been read. When the request
// has a body, the answer closes the connection and the body is not read:
// net/http would otherwise read the rest of it, before answering and again
// after the handler, as slowly as the peer sends it.
func refuse(w http.ResponseWriter, r *http.Request, e *restError) {
	if r.ContentLength == 0 {
		e.write(w)
		return
	}
	w.Header().Set("Connection", "close")
	e.write(w)
	// The answer is written before net/http closes the body; from now on
	// every read of the connection fails at once.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
}
