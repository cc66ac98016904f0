package localhub

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Paging of query results, as the service SDKs page them: the request's
// x-ms-max-item-count header asks for at most that many items, and an
// answer that has more to give carries an x-ms-continuation header, which
// the next request sends back. The last page carries none: the Node SDK
// takes any x-ms-continuation header, even an empty one, as "more results"
// (azure-iot-sdk-node service/src/query.ts). x-ms-item-type names what the
// items are: twin, deviceJob or jobResponse (the Java service SDK's
// QueryType).
const (
	maxItemCountHeader = "x-ms-max-item-count"
	continuationHeader = "x-ms-continuation"
	itemTypeHeader     = "x-ms-item-type"
	// defaultPageSize is the page size when the request asks for none
	// (UNCONFIRMED: IoT Hub's default is not documented).
	defaultPageSize = 100
	// maxPageSize is the largest page: the query language guide creates
	// queries "with a page size (up to 1000)"; larger requests get 1000.
	maxPageSize = 1000
)

// queryItem is one item a query may return, with the key that orders the
// items and continuation tokens point into.
type queryItem struct {
	key   string
	value any
}

// errBadPageSize and errBadContinuation report paging headers the hub
// cannot use.
var (
	errBadPageSize     = errors.New("x-ms-max-item-count must be a whole number of at least 1")
	errBadContinuation = errors.New("the x-ms-continuation token is not one this hub gave for this query")
)

// pageRequest is what a request asks of paging.
type pageRequest struct {
	size  int
	after string // the key of the last item already returned; "" for the first page
}

// readPageRequest reads the paging headers of a query about scope (the
// query text, or the jobs filter), which a continuation token must name.
func readPageRequest(h http.Header, scope string) (pageRequest, error) {
	p := pageRequest{size: defaultPageSize}
	if v := h.Get(maxItemCountHeader); v != "" {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 {
			return pageRequest{}, errBadPageSize
		}
		p.size = min(n, maxPageSize)
	}
	if token := h.Get(continuationHeader); token != "" {
		after, ok := decodeContinuation(token, scope)
		if !ok {
			return pageRequest{}, errBadContinuation
		}
		p.after = after
	}
	return p, nil
}

// continuationToken is the content of an x-ms-continuation header.
type continuationToken struct {
	Scope string `json:"s"` // a digest of the query the token belongs to
	After string `json:"a"`
}

func scopeDigest(scope string) string {
	sum := sha256.Sum256([]byte(scope))
	return hex.EncodeToString(sum[:8])
}

func encodeContinuation(scope, after string) string {
	b, _ := json.Marshal(continuationToken{Scope: scopeDigest(scope), After: after}) // strings always encode
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeContinuation(token, scope string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return "", false
	}
	var t continuationToken
	if json.Unmarshal(b, &t) != nil || t.Scope != scopeDigest(scope) || t.After == "" {
		return "", false
	}
	return t.After, true
}

// page returns the items after p.after that match, at most p.size of them,
// in key order, and the continuation token for the rest ("" when there is
// no more).
func (p pageRequest) page(items []queryItem, scope string, match func(any) bool) (page []any, continuation string) {
	slices.SortFunc(items, func(a, b queryItem) int { return strings.Compare(a.key, b.key) })
	page = []any{}
	last := ""
	for _, it := range items {
		if p.after != "" && it.key <= p.after {
			continue
		}
		if !match(it.value) {
			continue
		}
		if len(page) == p.size {
			return page, encodeContinuation(scope, last)
		}
		page = append(page, it.value)
		last = it.key
	}
	return page, ""
}

// writePage answers a query with one page of items.
func writePage(w http.ResponseWriter, itemType string, page []any, continuation string) {
	w.Header().Set(itemTypeHeader, itemType)
	if continuation != "" {
		w.Header().Set(continuationHeader, continuation)
	}
	writeJSON(w, http.StatusOK, page)
}
