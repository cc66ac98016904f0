package localhub

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/directmethods/iotdevice/sas"
)

// twinJSON is the twin GET /twins/{id}[/modules/{mid}] answers with: the
// fields of IoT Hub's twin document that the official service SDKs'
// getTwin reads (azure-iot-sdk-csharp Twin.cs, azure-iot-sdk-node
// service twin.ts), with the values the hub knows.
type twinJSON struct {
	DeviceID           string          `json:"deviceId"`
	ModuleID           string          `json:"moduleId,omitempty"`
	ETag               string          `json:"etag"`
	Status             string          `json:"status"`
	StatusUpdateTime   string          `json:"statusUpdateTime"`
	ConnectionState    string          `json:"connectionState"`
	LastActivityTime   string          `json:"lastActivityTime"`
	AuthenticationType string          `json:"authenticationType"`
	X509Thumbprint     thumbprintsJSON `json:"x509Thumbprint"`
	ModelID            string          `json:"modelId"`
	Version            int64           `json:"version"`
	Tags               map[string]any  `json:"tags"`
	Properties         twinProperties  `json:"properties"`
}

type thumbprintsJSON struct {
	Primary   *string `json:"primaryThumbprint"`
	Secondary *string `json:"secondaryThumbprint"`
}

type twinProperties struct {
	Desired  propertySet `json:"desired"`
	Reported propertySet `json:"reported"`
}

// propertySet is an empty desired or reported property set.
type propertySet struct {
	Metadata map[string]string `json:"$metadata"`
	Version  int               `json:"$version"`
}

// dotnetZeroTime is how IoT Hub writes a time that never was
// (DateTime.MinValue).
const dotnetZeroTime = "0001-01-01T00:00:00Z"

// formatTwinTime writes t in UTC as the hub's JSON does, or dotnetZeroTime.
func formatTwinTime(t time.Time) string {
	if t.IsZero() {
		return dotnetZeroTime
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// twinDocument returns the twin of a registered identity.
func (h *Hub) twinDocument(id *identity) twinJSON {
	name := id.name()
	st := h.twins.get(name)
	state := "Disconnected"
	if h.router.live(name) != nil {
		state = "Connected"
	}
	auth, thumbprint := "sas", (*string)(nil)
	switch {
	case id.thumbprint != "":
		auth, thumbprint = "selfSigned", &id.thumbprint
	case len(id.caCerts) > 0:
		auth = "certificateAuthority"
	}
	tags := h.tags.get(name)
	empty := propertySet{Metadata: map[string]string{"$lastUpdated": dotnetZeroTime}, Version: 1}
	return twinJSON{
		DeviceID: id.deviceID, ModuleID: id.moduleID,
		ETag:   tags.etag(),
		Status: "enabled", StatusUpdateTime: dotnetZeroTime,
		ConnectionState: state, LastActivityTime: formatTwinTime(st.lastActivity),
		AuthenticationType: auth, X509Thumbprint: thumbprintsJSON{Primary: thumbprint},
		ModelID: st.modelID, Version: tags.Version, Tags: tags.Tags,
		Properties: twinProperties{Desired: empty, Reported: empty},
	}
}

// parseTwinPath parses /twins/{id} and /twins/{id}/modules/{mid}, with or
// without one trailing slash, URL-decoding the ids.
func parseTwinPath(escapedPath string) (deviceID, moduleID string, ok bool) {
	segments := strings.Split(strings.TrimSuffix(escapedPath, "/"), "/")
	var raw []string
	switch {
	case len(segments) == 3 && segments[0] == "" && segments[1] == "twins":
		raw = segments[2:]
	case len(segments) == 5 && segments[0] == "" && segments[1] == "twins" && segments[3] == "modules":
		raw = []string{segments[2], segments[4]}
	default:
		return "", "", false
	}
	ids, ok := unescapeIDs(raw)
	if !ok {
		return "", "", false
	}
	if len(ids) == 2 {
		return ids[0], ids[1], true
	}
	return ids[0], "", true
}

// unescapeIDs URL-decodes path segments, none of which may end up empty.
func unescapeIDs(raw []string) ([]string, bool) {
	ids := make([]string, len(raw))
	for i, s := range raw {
		id, ok := unescapeSegment(s)
		if !ok {
			return nil, false
		}
		ids[i] = id
	}
	return ids, true
}

// unescapeSegment URL-decodes one path segment, which must not end up
// empty.
func unescapeSegment(s string) (string, bool) {
	v, err := url.PathUnescape(s)
	return v, err == nil && v != ""
}

// serveTwin answers GET, PATCH and PUT /twins/{id}[/modules/{mid}] and
// reports whether the path was one of these.
func (h *Hub) serveTwin(w http.ResponseWriter, r *http.Request) bool {
	deviceID, moduleID, ok := parseTwinPath(r.URL.EscapedPath())
	if !ok {
		return false
	}
	switch r.Method {
	case http.MethodGet:
	case http.MethodPatch, http.MethodPut:
		h.serveTwinUpdate(w, r, deviceID, moduleID)
		return true
	default:
		w.Header().Set("Allow", "GET, PATCH, PUT")
		refuse(w, r, errMethodNotAllowed(r.Method))
		return true
	}
	if !h.checkServiceRequest(w, r, deviceID, moduleID, supportedAPIVersions) {
		return true
	}
	id, rerr := h.lookupTarget(deviceID, moduleID)
	if rerr != nil {
		rerr.write(w)
		return true
	}
	if !h.admit(w, r, h.throttle.twinReads, 1, "twin reads") {
		return true
	}
	writeJSON(w, http.StatusOK, h.twinDocument(id))
	return true
}

// checkServiceRequest checks a service API request's api-version (one of
// versions) and its service token, which must cover the identity's
// resource, and answers the request when either fails.
func (h *Hub) checkServiceRequest(w http.ResponseWriter, r *http.Request, deviceID, moduleID string, versions []string) bool {
	if rerr := checkAPIVersionOf(r.URL.Query(), versions); rerr != nil {
		refuse(w, r, rerr)
		return false
	}
	target := sas.Resource(h.hostName, deviceID, moduleID)
	if err := h.reg.authorizeService(r.Header.Get("Authorization"), target, time.Now()); err != nil {
		h.log.Warn("rest: unauthorized", "identity", identityName(deviceID, moduleID), "reason", err.Error())
		refuse(w, r, errUnauthorized())
		return false
	}
	return true
}

// lookupTarget returns the registered device or module a request names,
// or the error IoT Hub answers: 404001 for an unknown device, 404010 for
// an unknown module.
func (h *Hub) lookupTarget(deviceID, moduleID string) (*identity, *restError) {
	device, ok := h.reg.lookup(deviceID)
	if !ok {
		return nil, errDeviceNotFound(deviceID)
	}
	if moduleID == "" {
		return device, nil
	}
	module, ok := h.reg.lookup(identityName(deviceID, moduleID))
	if !ok {
		return nil, errModuleNotFound(deviceID, moduleID)
	}
	return module, nil
}

// writeJSON answers with status and v as JSON; v is one of the hub's
// documents, structs of strings, numbers and string maps, which always
// encode.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
