package localhub

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The IoT Plug and Play digital twin API (the DigitalTwin operations of
// the IoT Hub service REST API, azure-iot-sdk-csharp
// iothub/service/src/DigitalTwin/DigitalTwin.json):
//
//	GET  /digitaltwins/{id}
//	POST /digitaltwins/{id}/commands/{command}
//	POST /digitaltwins/{id}/components/{component}/commands/{command}
//
// A command is a direct method: "{component}*{command}" for a
// component's, the bare command for the default component's. The request
// body is the payload itself and the timeouts are query parameters; the
// answer is the device's payload with its status in the
// x-ms-command-statuscode header. Failures answer as /methods does.

// digitalTwinAPIVersions are the api-version values the digital twin API
// accepts: the one azure-iothub's generated client sends (2020-09-30) and
// the one of the C# service SDK and the REST reference (2021-04-12).
var digitalTwinAPIVersions = []string{"2020-09-30", "2021-04-12"}

// Headers of a command's answer.
const (
	commandStatusHeader = "x-ms-command-statuscode"
	requestIDHeader     = "x-ms-request-id"
)

// digitalTwinPath is a parsed /digitaltwins path.
type digitalTwinPath struct {
	deviceID  string
	component string // "" for the default component
	command   string // "" for the digital twin itself
}

// parseDigitalTwinPath parses the digital twin API's paths, with or
// without one trailing slash, URL-decoding each segment.
func parseDigitalTwinPath(escapedPath string) (digitalTwinPath, bool) {
	segments := strings.Split(strings.TrimSuffix(escapedPath, "/"), "/")
	if len(segments) < 3 || segments[0] != "" || segments[1] != "digitaltwins" {
		return digitalTwinPath{}, false
	}
	var raw digitalTwinPath
	switch rest := segments[3:]; {
	case len(rest) == 0:
		raw = digitalTwinPath{deviceID: segments[2]}
	case len(rest) == 2 && rest[0] == "commands" && rest[1] != "":
		raw = digitalTwinPath{deviceID: segments[2], command: rest[1]}
	case len(rest) == 4 && rest[0] == "components" && rest[1] != "" && rest[2] == "commands" && rest[3] != "":
		raw = digitalTwinPath{deviceID: segments[2], component: rest[1], command: rest[3]}
	default:
		return digitalTwinPath{}, false
	}
	// Empty raw fields are the parts the path does not have; every part
	// it has must decode to something.
	var p digitalTwinPath
	var ok bool
	if p.deviceID, ok = unescapeSegment(raw.deviceID); !ok {
		return digitalTwinPath{}, false
	}
	if raw.component != "" {
		if p.component, ok = unescapeSegment(raw.component); !ok {
			return digitalTwinPath{}, false
		}
	}
	if raw.command != "" {
		if p.command, ok = unescapeSegment(raw.command); !ok {
			return digitalTwinPath{}, false
		}
	}
	return p, true
}

// methodName is the direct method a command path names.
func (p digitalTwinPath) methodName() string {
	if p.component == "" {
		return p.command
	}
	return p.component + "*" + p.command
}

// digitalTwinJSON is the answer of GET /digitaltwins/{id}: the twin's id
// and, when the device announced one, its model. The hub keeps no
// properties, so there are no others.
type digitalTwinJSON struct {
	ID       string              `json:"$dtId"`
	Metadata digitalTwinMetadata `json:"$metadata"`
}

type digitalTwinMetadata struct {
	Model string `json:"$model,omitempty"`
}

// serveDigitalTwin answers the digital twin API and reports whether the
// path was one of its paths.
func (h *Hub) serveDigitalTwin(w http.ResponseWriter, r *http.Request) bool {
	p, ok := parseDigitalTwinPath(r.URL.EscapedPath())
	if !ok {
		return false
	}
	want := http.MethodPost
	if p.command == "" {
		want = http.MethodGet
	}
	if r.Method != want {
		w.Header().Set("Allow", want)
		refuse(w, r, errMethodNotAllowed(r.Method))
		return true
	}
	if !h.checkServiceRequest(w, r, p.deviceID, "", digitalTwinAPIVersions) {
		return true
	}
	if p.command == "" {
		id, rerr := h.lookupTarget(p.deviceID, "")
		if rerr != nil {
			rerr.write(w)
			return true
		}
		if !h.admit(w, r, h.throttle.twinReads, 1, "twin reads") {
			return true
		}
		writeJSON(w, http.StatusOK, digitalTwinJSON{ID: id.deviceID, Metadata: digitalTwinMetadata{Model: h.twins.get(id.name()).modelID}})
		return true
	}
	h.serveCommand(w, r, p)
	return true
}

// serveCommand invokes a command whose request has passed the api-version
// and token checks.
func (h *Hub) serveCommand(w http.ResponseWriter, r *http.Request, p digitalTwinPath) {
	log := h.log.With("identity", p.deviceID)
	req, rerr := commandRequest(r.URL.Query(), p)
	if rerr != nil {
		refuse(w, r, rerr)
		return
	}
	body, ok := h.readAuthenticatedBody(w, r)
	if !ok {
		return
	}
	switch {
	case len(body) > maxMethodPayload:
		errMessageTooLarge(fmt.Sprintf("The payload is %d bytes, more than the %d allowed.", len(body), maxMethodPayload)).write(w)
		return
	case len(body) > 0 && !json.Valid(body):
		// UNCONFIRMED: how IoT Hub answers a payload that is not JSON; the
		// API declares a JSON body, and /methods refuses one that is not.
		errArgumentInvalid("The request body, the command's payload, is not valid JSON.").write(w)
		return
	case len(body) > 0:
		req.payload = body
	}
	if _, rerr := h.lookupTarget(p.deviceID, ""); rerr != nil {
		rerr.write(w)
		return
	}

	if !h.admit(w, r, h.throttle.methods, methodMeters(len(req.payload)), "direct methods") {
		return
	}
	start := time.Now()
	resp, err := h.router.invoke(r.Context(), p.deviceID, req.methodName, req.payload, req.connectTimeout, req.responseTimeout)
	attrs := []any{"method", req.methodName, "duration", time.Since(start).Round(time.Millisecond)}
	if rerr := h.invocationOutcome(log, p.deviceID, req, err, attrs); rerr != nil {
		rerr.write(w)
		return
	}
	if len(resp.payload) > 0 && !json.Valid(resp.payload) {
		log.Warn("rest: device answered with a body that is not JSON; passed through", append(attrs, "status", resp.status)...)
	}
	log.Info("rest: command invoked", append(attrs, "status", resp.status)...)
	payload := resp.payload
	if len(payload) == 0 {
		payload = []byte("null")
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set(commandStatusHeader, strconv.Itoa(resp.status))
	w.Header().Set(requestIDHeader, newRequestID())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(payload)
}

// commandRequest validates a command's name and its timeout query
// parameters, with the defaults and ranges of /methods.
func commandRequest(query map[string][]string, p digitalTwinPath) (invokeRequest, *restError) {
	if strings.Contains(p.component, "*") || strings.Contains(p.command, "*") {
		// UNCONFIRMED: IoT Hub's answer; a '*' would make the method name
		// name another component.
		return invokeRequest{}, errArgumentInvalid("Component and command names must not contain '*'.")
	}
	req := invokeRequest{methodName: p.methodName(), responseTimeout: defaultResponseTimeout}
	if err := validateMethodName(req.methodName); err != nil {
		return invokeRequest{}, errArgumentInvalid(strings.Replace(err.Error(), "methodName", "The command name", 1))
	}
	response, rerr := timeoutParameter(query, "responseTimeoutInSeconds", minResponseTimeout, maxResponseTimeout)
	if rerr != nil {
		return invokeRequest{}, rerr
	}
	if response >= 0 {
		req.responseTimeout = time.Duration(response) * time.Second
	}
	connect, rerr := timeoutParameter(query, "connectTimeoutInSeconds", 0, maxConnectTimeout)
	if rerr != nil {
		return invokeRequest{}, rerr
	}
	if connect >= 0 {
		req.connectTimeout = time.Duration(connect) * time.Second
	}
	return req, nil
}

// timeoutParameter reads an optional whole number of seconds in
// [lowest, highest]; -1 when it is absent.
func timeoutParameter(query map[string][]string, name string, lowest, highest int) (int, *restError) {
	values := query[name]
	switch {
	case len(values) == 0:
		return -1, nil
	case len(values) > 1:
		return 0, errArgumentInvalid(name + " is given more than once.")
	}
	n, err := strconv.Atoi(values[0])
	if err != nil || n < lowest || n > highest {
		return 0, errArgumentInvalid(fmt.Sprintf("%s must be a whole number between %d and %d.", name, lowest, highest))
	}
	return n, nil
}

// newRequestID returns a random UUID (version 4) for x-ms-request-id,
// the form the service gives it ("Server Generated Request Id (GUID)",
// azure-iot-sdk-csharp DigitalTwinInvokeCommandResponse).
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
