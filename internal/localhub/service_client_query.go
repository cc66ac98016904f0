package localhub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// The twin update and query calls of ServiceClient, as the official
// service SDKs make them (azure-iot-sdk-node registry.ts updateTwin and
// createQuery).

// QueryPage is one page of a query's answer.
type QueryPage struct {
	Items        []json.RawMessage
	ItemType     string // x-ms-item-type: twin, deviceJob or jobResponse
	Continuation string // x-ms-continuation; "" on the last page
}

// UpdateTwinTags calls PATCH /twins/{deviceID}[/modules/{moduleID}] with
// {"tags": tags} and If-Match: etag ("" sends none). A non-200 answer is a
// *ServiceError.
func (c *ServiceClient) UpdateTwinTags(ctx context.Context, deviceID, moduleID string, tags map[string]any, etag string) (*Twin, error) {
	body, err := json.Marshal(map[string]any{"tags": tags})
	if err != nil {
		return nil, fmt.Errorf("localhub: update twin: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, c.url(twinPath(deviceID, moduleID)+"?api-version="+serviceAPIVersion), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("localhub: update twin: %w", err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if etag != "" {
		req.Header.Set("If-Match", `"`+etag+`"`)
	}
	var twin Twin
	if err := c.doJSON(req, &twin); err != nil {
		return nil, fmt.Errorf("localhub: update twin: %w", err)
	}
	return &twin, nil
}

// Query calls POST /devices/query for one page: at most pageSize items (0:
// the hub's default), after continuation ("" for the first page).
func (c *ServiceClient) Query(ctx context.Context, query string, pageSize int, continuation string) (*QueryPage, error) {
	body, err := json.Marshal(map[string]string{"query": query})
	if err != nil {
		return nil, fmt.Errorf("localhub: query: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(queryPath+"?api-version="+serviceAPIVersion), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("localhub: query: %w", err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	page, err := c.page(req, pageSize, continuation)
	if err != nil {
		return nil, fmt.Errorf("localhub: query: %w", err)
	}
	return page, nil
}

// QueryAll runs a query to its last page and returns every item.
func (c *ServiceClient) QueryAll(ctx context.Context, query string) ([]json.RawMessage, error) {
	var items []json.RawMessage
	continuation := ""
	for {
		page, err := c.Query(ctx, query, 0, continuation)
		if err != nil {
			return nil, err
		}
		items = append(items, page.Items...)
		if continuation = page.Continuation; continuation == "" {
			return items, nil
		}
	}
}

// page sends a query request with the paging headers and reads one page.
func (c *ServiceClient) page(req *http.Request, pageSize int, continuation string) (*QueryPage, error) {
	if pageSize > 0 {
		req.Header.Set(maxItemCountHeader, strconv.Itoa(pageSize))
	}
	if continuation != "" {
		req.Header.Set(continuationHeader, continuation)
	}
	resp, body, err := c.do(req)
	if err != nil {
		return nil, err
	}
	p := &QueryPage{ItemType: resp.Header.Get(itemTypeHeader), Continuation: resp.Header.Get(continuationHeader)}
	if err := json.Unmarshal(body, &p.Items); err != nil {
		return nil, fmt.Errorf("decode answer: %w", err)
	}
	return p, nil
}

// doJSON sends req and decodes a 200 answer into v.
func (c *ServiceClient) doJSON(req *http.Request, v any) error {
	_, body, err := c.do(req)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// twinPath is /twins/{deviceID}[/modules/{moduleID}], escaped.
func twinPath(deviceID, moduleID string) string {
	path := "/twins/" + url.PathEscape(deviceID)
	if moduleID != "" {
		path += "/modules/" + url.PathEscape(moduleID)
	}
	return path
}
