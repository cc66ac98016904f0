package localhub

import (
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Kinds of DPS paths on the HTTPS port.
const (
	dpsRegisterPath     = iota + 1 // PUT /{idScope}/registrations/{registrationId}/register
	dpsOperationPath               // GET /{idScope}/registrations/{registrationId}/operations/{operationId}
	dpsEnrollmentPath              // PUT, GET, DELETE /enrollments/{registrationId}
	dpsGroupPath                   // PUT, GET, DELETE /enrollmentGroups/{enrollmentGroupId}
	dpsRegistrationPath            // GET, DELETE /registrations/{registrationId}
)

// dpsPath is a parsed DPS path, its ids URL-decoded.
type dpsPath struct {
	kind        int
	idScope     string
	id          string // the registration or enrollment group id
	operationID string
}

// parseDPSPath parses the paths of DPS's device API (DPS REST reference,
// Runtime Registration) and service API (Individual Enrollment,
// Enrollment Group, Device Registration State). The service API's
// collection names match without regard to case, as the Node.js service
// SDK writes both /enrollmentGroups/ and /enrollmentgroups/.
func parseDPSPath(escapedPath string) (dpsPath, bool) {
	segs := strings.Split(escapedPath, "/")
	if len(segs) < 3 || segs[0] != "" {
		return dpsPath{}, false
	}
	raw := segs[1:]
	for i, s := range raw {
		v, err := url.PathUnescape(s)
		if err != nil || v == "" {
			return dpsPath{}, false
		}
		raw[i] = v
	}
	switch {
	case len(raw) == 4 && raw[1] == "registrations" && raw[3] == "register":
		return dpsPath{kind: dpsRegisterPath, idScope: raw[0], id: raw[2]}, true
	case len(raw) == 5 && raw[1] == "registrations" && raw[3] == "operations":
		return dpsPath{kind: dpsOperationPath, idScope: raw[0], id: raw[2], operationID: raw[4]}, true
	case len(raw) == 2 && strings.EqualFold(raw[0], "enrollments"):
		return dpsPath{kind: dpsEnrollmentPath, id: raw[1]}, true
	case len(raw) == 2 && strings.EqualFold(raw[0], "enrollmentGroups"):
		return dpsPath{kind: dpsGroupPath, id: raw[1]}, true
	case len(raw) == 2 && strings.EqualFold(raw[0], "registrations"):
		return dpsPath{kind: dpsRegistrationPath, id: raw[1]}, true
	}
	return dpsPath{}, false
}

// serveDPS serves the Device Provisioning Service's device and service
// APIs on the hub's HTTPS port; it reports false, having written nothing,
// for any other path.
func (h *Hub) serveDPS(w http.ResponseWriter, r *http.Request) bool {
	p, ok := parseDPSPath(r.URL.EscapedPath())
	if !ok {
		return false
	}
	if p.kind == dpsRegisterPath || p.kind == dpsOperationPath {
		h.serveDPSDevice(w, r, p)
	} else {
		h.serveDPSService(w, r, p)
	}
	return true
}

// serveDPSDevice serves a device's registration or operation status
// request over HTTPS, authenticated by the Authorization header's SAS
// token or else by the TLS client certificate.
func (h *Hub) serveDPSDevice(w http.ResponseWriter, r *http.Request, p dpsPath) {
	now := time.Now()
	body, ok := readDPSRequest(w, r, dpsMethods(p.kind), now)
	if !ok {
		return
	}
	req := deviceRequest{
		idScope:        p.idScope,
		registrationID: p.id,
		apiVersion:     strings.Join(r.URL.Query()["api-version"], ","),
		operationID:    p.operationID,
		body:           body,
		transport:      "https",
	}
	if token := r.Header.Get("Authorization"); token != "" {
		req.proof.token = token
	} else if r.TLS != nil {
		req.proof.chain = chainOf(r.TLS.PeerCertificates)
	}
	var a dpsAnswer
	if p.kind == dpsRegisterPath {
		a = h.dps.register(r.Context(), req, now)
	} else {
		a = h.dps.poll(req, now)
	}
	if a.status < 300 {
		requestGuard(r).lift() // authenticated: later polls may reuse the connection
	}
	writeDPSAnswer(w, r, a)
}

// serveDPSService serves the service API: enrollments, enrollment groups
// and registration states, authorized by a provisioningserviceowner token.
func (h *Hub) serveDPSService(w http.ResponseWriter, r *http.Request, p dpsPath) {
	now := time.Now()
	if err := h.dps.authorizeService(r.Header.Get("Authorization"), now); err != nil {
		h.dps.log.Warn("dps: service request unauthorized", "reason", err)
		writeDPSAnswer(w, r, errDPSUnauthorized().answer(now))
		return
	}
	if rerr := checkServiceAPIVersion(r.URL.Query()["api-version"]); rerr != nil {
		writeDPSAnswer(w, r, rerr.answer(now))
		return
	}
	body, ok := readDPSRequest(w, r, dpsMethods(p.kind), now)
	if !ok {
		return
	}
	requestGuard(r).lift()
	ifMatch := r.Header.Get("If-Match")
	group := p.kind == dpsGroupPath
	var v any
	var rerr *dpsError
	switch {
	case p.kind == dpsRegistrationPath && r.Method == http.MethodGet:
		v, rerr = h.dps.getRegistration(p.id)
	case p.kind == dpsRegistrationPath:
		rerr = h.dps.deleteRegistration(p.id, ifMatch)
	case r.Method == http.MethodGet:
		v, rerr = h.dps.getEnrollment(group, p.id)
	case r.Method == http.MethodPut:
		v, rerr = h.dps.putEnrollment(group, p.id, body, ifMatch, now)
	default:
		rerr = h.dps.deleteEnrollment(group, p.id, ifMatch)
	}
	switch {
	case rerr != nil:
		writeDPSAnswer(w, r, rerr.answer(now))
	case v == nil:
		w.WriteHeader(http.StatusNoContent)
	default:
		writeDPSAnswer(w, r, dpsAnswer{status: http.StatusOK, body: encodeAnswer(v)})
	}
}

// dpsMethods are the HTTP methods DPS serves on a path of kind.
func dpsMethods(kind int) []string {
	switch kind {
	case dpsRegisterPath:
		return []string{http.MethodPut}
	case dpsOperationPath:
		return []string{http.MethodGet}
	case dpsRegistrationPath:
		return []string{http.MethodGet, http.MethodDelete}
	}
	return []string{http.MethodGet, http.MethodPut, http.MethodDelete}
}

// readDPSRequest checks a request's method against those served and
// reads its body; on failure it has answered and returns false.
func readDPSRequest(w http.ResponseWriter, r *http.Request, methods []string, now time.Time) ([]byte, bool) {
	if !slices.Contains(methods, r.Method) {
		w.Header().Set("Allow", strings.Join(methods, ", "))
		writeDPSAnswer(w, r, errDPSMethodNotAllowed(r.Method).answer(now))
		return nil, false
	}
	body, rerr := readDPSBody(r)
	if rerr != nil {
		writeDPSAnswer(w, r, rerr.answer(now))
		return nil, false
	}
	return body, true
}

// readDPSBody reads a request's body, at most maxDPSBody bytes.
func readDPSBody(r *http.Request) ([]byte, *dpsError) {
	if r.ContentLength > maxDPSBody {
		return nil, errDPSTooLarge()
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxDPSBody+1))
	switch {
	case err != nil:
		return nil, errDPSBadRequest("The request body could not be read.")
	case len(body) > maxDPSBody:
		return nil, errDPSTooLarge()
	}
	return body, nil
}

// writeDPSAnswer writes a DPS answer: its JSON body, its retry-after in
// seconds, and an error's tracking id as x-ms-request-id, as DPS does
// (the headers of a 401 in microsoft/vscode-iot-workbench issue #590). An
// answer to a request whose body was not read in full closes the
// connection rather than read the rest.
func writeDPSAnswer(w http.ResponseWriter, r *http.Request, a dpsAnswer) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	if a.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int(a.retryAfter/time.Second)))
	}
	if a.trackingID != "" {
		h.Set("x-ms-request-id", a.trackingID)
	}
	if a.status == http.StatusRequestEntityTooLarge {
		h.Set("Connection", "close")
		_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}
