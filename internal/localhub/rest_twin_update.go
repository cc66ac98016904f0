package localhub

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Twin updates, the service API's
//
//	PATCH /twins/{id}[/modules/{mid}]  (update: tags merge as a JSON merge patch)
//	PUT   /twins/{id}[/modules/{mid}]  (replace: the body's tags replace the twin's)
//
// with If-Match: the twin's ETag (quoted or not) or "*"; a mismatch is
// answered 412 with 412001 PreconditionFailed (IoT Hub "common error
// codes": "The etag in the request does not match the etag of the existing
// resource"). The official service SDKs send the whole twin document
// (azure-iot-sdk-csharp Twin.cs) or a patch of it (azure-iot-sdk-node
// registry.ts updateTwin), so fields the service cannot change (etag,
// version, status, connectionState, ...) are ignored, as IoT Hub ignores
// them. The hub keeps no desired or reported properties: a body that sets
// any is refused rather than losing them silently.

// twinUpdateBody is the part of a twin document an update reads.
type twinUpdateBody struct {
	DeviceID   *string         `json:"deviceId"`
	ModuleID   *string         `json:"moduleId"`
	Tags       json.RawMessage `json:"tags"`
	Properties *struct {
		Desired  json.RawMessage `json:"desired"`
		Reported json.RawMessage `json:"reported"`
	} `json:"properties"`
}

// twinUpdate is a validated update: the tags to merge or to set.
type twinUpdate struct {
	tags    map[string]any // nil: the body had none
	replace bool
}

// decodeTwinUpdate parses and validates the body of a twin update of the
// identity deviceID[/moduleID]; replace is true for PUT.
func decodeTwinUpdate(body []byte, deviceID, moduleID string, replace bool) (twinUpdate, *restError) {
	var b twinUpdateBody
	if err := json.Unmarshal(body, &b); err != nil {
		return twinUpdate{}, errArgumentInvalid("The request body is not a valid twin: " + clip(err.Error()))
	}
	if b.DeviceID != nil && *b.DeviceID != deviceID {
		return twinUpdate{}, errArgumentInvalid(fmt.Sprintf("The twin's deviceId %q is not the device %q of the path.", clip(*b.DeviceID), deviceID))
	}
	if b.ModuleID != nil && *b.ModuleID != "" && *b.ModuleID != moduleID {
		return twinUpdate{}, errArgumentInvalid(fmt.Sprintf("The twin's moduleId %q is not the module %q of the path.", clip(*b.ModuleID), moduleID))
	}
	if b.Properties != nil {
		for _, p := range []struct {
			name string
			raw  json.RawMessage
		}{{"desired", b.Properties.Desired}, {"reported", b.Properties.Reported}} {
			if err := checkNoProperties(p.raw); err != nil {
				return twinUpdate{}, errArgumentInvalid(fmt.Sprintf("properties.%s: %v. This local hub keeps tags only; it does not store desired or reported properties.", p.name, err))
			}
		}
	}
	u := twinUpdate{replace: replace}
	if len(b.Tags) == 0 || bytes.Equal(b.Tags, []byte("null")) {
		if replace {
			u.tags = map[string]any{}
		}
		return u, nil
	}
	tags, err := decodeTags(b.Tags, !replace)
	if err != nil {
		return twinUpdate{}, errArgumentInvalid(strings.TrimPrefix(err.Error(), errInvalidTags.Error()+": "))
	}
	u.tags = tags
	return u, nil
}

// checkNoProperties accepts an absent or null property set, or one with
// only its metadata ($metadata, $version), which the SDKs send back as they
// read it.
func checkNoProperties(raw json.RawMessage) error {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	var set map[string]json.RawMessage
	if err := json.Unmarshal(raw, &set); err != nil {
		return errors.New("not a JSON object")
	}
	for k := range set {
		if !strings.HasPrefix(k, "$") {
			return fmt.Errorf("sets %q", clip(k))
		}
	}
	return nil
}

// apply returns the tags after the update.
func (u twinUpdate) apply(tags map[string]any) (map[string]any, error) {
	switch {
	case u.tags == nil:
		return tags, nil
	case u.replace:
		tags = cloneTags(u.tags)
	default:
		tags = mergeTags(tags, cloneTags(u.tags))
	}
	if err := checkTagsSize(tags); err != nil {
		return nil, err
	}
	return tags, nil
}

// serveTwinUpdate answers PATCH and PUT /twins/{id}[/modules/{mid}] with
// the twin as it is after the update.
func (h *Hub) serveTwinUpdate(w http.ResponseWriter, r *http.Request, deviceID, moduleID string) {
	if !h.checkServiceRequest(w, r, deviceID, moduleID, supportedAPIVersions) {
		return
	}
	raw, ok := h.readAuthenticatedBody(w, r)
	if !ok {
		return
	}
	id, rerr := h.lookupTarget(deviceID, moduleID)
	if rerr != nil {
		rerr.write(w)
		return
	}
	u, rerr := decodeTwinUpdate(raw, deviceID, moduleID, r.Method == http.MethodPut)
	if rerr != nil {
		rerr.write(w)
		return
	}
	if !h.admit(w, r, h.throttle.twinUpdates, 1, "twin updates") {
		return
	}
	_, err := h.tags.update(id.name(), ifMatch(r), u.apply)
	switch {
	case errors.Is(err, errETagMismatch):
		errPreconditionFailed("The etag in the request does not match the twin's etag; read the twin again.").write(w)
		return
	case err != nil:
		errArgumentInvalid(strings.TrimPrefix(err.Error(), errInvalidTags.Error()+": ")).write(w)
		return
	}
	h.log.Info("rest: twin updated", "identity", id.name(), "replace", u.replace)
	writeJSON(w, http.StatusOK, h.twinDocument(id))
}

// ifMatch returns the If-Match header's entity tag without the quotes and
// weak prefix HTTP allows around it (the C# service SDK quotes it, the Node
// one does not); "" when there is none.
func ifMatch(r *http.Request) string {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	v = strings.TrimPrefix(v, "W/")
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	return v
}
