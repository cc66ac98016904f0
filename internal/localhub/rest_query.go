package localhub

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
)

// The query API, POST /devices/query with {"query": "SELECT * FROM ..."}
// (azure-iot-sdk-node registry.ts _executeQueryFunc; the C# service SDK's
// RegistryManager.CreateQuery), paged as query_paging.go describes. Twins
// come in the form GET /twins answers; device jobs in the form
// DeviceJob.

// queryPath is where the query API is served.
const queryPath = "/devices/query"

// queryBody is the request body of the query API.
type queryBody struct {
	Query *string `json:"query"`
}

// serveDeviceQuery answers POST /devices/query and reports whether the
// path was this one.
func (h *Hub) serveDeviceQuery(w http.ResponseWriter, r *http.Request) bool {
	if strings.TrimSuffix(r.URL.EscapedPath(), "/") != queryPath {
		return false
	}
	if r.Method != http.MethodPost {
		errMethodNotAllowedOn(w, r, http.MethodPost)
		return true
	}
	if !h.checkHubRequest(w, r) {
		return true
	}
	raw, ok := h.readAuthenticatedBody(w, r)
	if !ok {
		return true
	}
	var body queryBody
	if err := json.Unmarshal(raw, &body); err != nil || body.Query == nil {
		errArgumentInvalid(`The request body must be {"query": "SELECT * FROM devices ..."}.`).write(w)
		return true
	}
	q, err := parseQuery(*body.Query)
	var qe *QueryError
	switch {
	case errors.As(err, &qe):
		h.log.Info("rest: query refused", "err", err)
		errQuerySyntax(qe).write(w)
		return true
	case err != nil:
		errArgumentInvalid(err.Error()).write(w)
		return true
	}
	p, err := readPageRequest(r.Header, *body.Query)
	if err != nil {
		errArgumentInvalid(err.Error()).write(w)
		return true
	}
	if !h.admit(w, r, h.throttle.queries, 1, "queries") {
		return true
	}
	items, itemType := h.queryItems(q.source)
	page, continuation := p.page(items, *body.Query, func(v any) bool { return q.matches(queryDocument(v)) })
	writePage(w, itemType, page, continuation)
	return true
}

// queryItems returns what a query's source holds and the items' type for
// x-ms-item-type.
func (h *Hub) queryItems(src querySource) ([]queryItem, string) {
	switch src {
	case sourceJobs:
		return h.jobs.deviceJobItems(), "deviceJob"
	}
	var items []queryItem
	for _, id := range h.reg.all() {
		if (src == sourceModules) != (id.moduleID != "") {
			continue
		}
		items = append(items, queryItem{key: id.deviceID + "\x00" + id.moduleID, value: h.twinDocument(id)})
	}
	return items, "twin"
}

// checkHubRequest checks a hub-wide service API request (queries, jobs):
// a supported api-version and a service token for the whole hub; it
// answers the request when either fails.
func (h *Hub) checkHubRequest(w http.ResponseWriter, r *http.Request) bool {
	if rerr := checkAPIVersion(r.URL.Query()); rerr != nil {
		refuse(w, r, rerr)
		return false
	}
	if err := h.reg.authorizeService(r.Header.Get("Authorization"), h.hostName, time.Now()); err != nil {
		h.log.Warn("rest: unauthorized", "path", r.URL.Path, "reason", err.Error())
		refuse(w, r, errUnauthorized())
		return false
	}
	return true
}
