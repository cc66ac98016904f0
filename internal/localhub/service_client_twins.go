package localhub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// digitalTwinClientAPIVersion is the api-version the client sends to the
// digital twin API, the one azure-iothub's generated client sends.
const digitalTwinClientAPIVersion = "2020-09-30"

// Twin is the part of a twin document GetTwin reads.
type Twin struct {
	DeviceID         string `json:"deviceId"`
	ModuleID         string `json:"moduleId"`
	ModelID          string `json:"modelId"`
	Status           string `json:"status"`
	ConnectionState  string `json:"connectionState"`
	LastActivityTime string `json:"lastActivityTime"`
	Version          int64  `json:"version"`
	ETag             string `json:"etag"`
	// Tags are the twin's tags; numbers are float64.
	Tags map[string]any `json:"tags"`
}

// DigitalTwin is the part of a digital twin GetDigitalTwin reads.
type DigitalTwin struct {
	ID       string `json:"$dtId"`
	Metadata struct {
		Model string `json:"$model"`
	} `json:"$metadata"`
}

// CommandOptions are a command's optional timeouts, in seconds; zero
// leaves a timeout out, so that the hub's default applies.
type CommandOptions struct {
	ConnectTimeoutInSeconds  int
	ResponseTimeoutInSeconds int
}

// CommandResult is the answer of a successful command: the device's status
// (x-ms-command-statuscode), its payload as the body carried it, and the
// hub's x-ms-request-id.
type CommandResult struct {
	Status    int
	Payload   json.RawMessage
	RequestID string
}

// GetTwin calls GET /twins/{deviceID}[/modules/{moduleID}]. A non-200
// answer is a *ServiceError.
func (c *ServiceClient) GetTwin(ctx context.Context, deviceID, moduleID string) (*Twin, error) {
	var twin Twin
	if err := c.getJSON(ctx, twinPath(deviceID, moduleID)+"?api-version="+serviceAPIVersion, &twin); err != nil {
		return nil, fmt.Errorf("localhub: get twin: %w", err)
	}
	return &twin, nil
}

// GetDigitalTwin calls GET /digitaltwins/{deviceID}. A non-200 answer is a
// *ServiceError.
func (c *ServiceClient) GetDigitalTwin(ctx context.Context, deviceID string) (*DigitalTwin, error) {
	var dt DigitalTwin
	if err := c.getJSON(ctx, "/digitaltwins/"+url.PathEscape(deviceID)+"?api-version="+digitalTwinClientAPIVersion, &dt); err != nil {
		return nil, fmt.Errorf("localhub: get digital twin: %w", err)
	}
	return &dt, nil
}

// InvokeCommand calls POST /digitaltwins/{deviceID}/commands/{command},
// or .../components/{component}/commands/{command} when component is set,
// with payload as the body (nil: none). A non-200 answer is a
// *ServiceError. When ctx has no deadline, the call is bounded as Invoke's.
func (c *ServiceClient) InvokeCommand(ctx context.Context, deviceID, component, command string, payload json.RawMessage, opts CommandOptions) (*CommandResult, error) {
	path := "/digitaltwins/" + url.PathEscape(deviceID)
	if component != "" {
		path += "/components/" + url.PathEscape(component)
	}
	query := url.Values{"api-version": {digitalTwinClientAPIVersion}}
	if opts.ConnectTimeoutInSeconds > 0 {
		query.Set("connectTimeoutInSeconds", strconv.Itoa(opts.ConnectTimeoutInSeconds))
	}
	if opts.ResponseTimeoutInSeconds > 0 {
		query.Set("responseTimeoutInSeconds", strconv.Itoa(opts.ResponseTimeoutInSeconds))
	}
	ctx, cancel := boundCall(ctx, opts.ResponseTimeoutInSeconds, opts.ConnectTimeoutInSeconds)
	defer cancel()
	target := c.url(path + "/commands/" + url.PathEscape(command) + "?" + query.Encode())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(payload))
	if err != nil {
		return nil, fmt.Errorf("localhub: invoke command: %w", err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, body, err := c.do(req)
	if err != nil {
		return nil, fmt.Errorf("localhub: invoke command: %w", err)
	}
	status, err := strconv.Atoi(resp.Header.Get(commandStatusHeader))
	if err != nil {
		return nil, fmt.Errorf("localhub: invoke command: %s header %q is not a status", commandStatusHeader, resp.Header.Get(commandStatusHeader))
	}
	return &CommandResult{Status: status, Payload: body, RequestID: resp.Header.Get(requestIDHeader)}, nil
}

// getJSON GETs path and decodes a 200 answer into v.
func (c *ServiceClient) getJSON(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(path), nil)
	if err != nil {
		return err
	}
	return c.doJSON(req, v)
}

// url returns the address of path on the hub.
func (c *ServiceClient) url(path string) string {
	return "https://" + net.JoinHostPort(c.hostName, c.port) + path
}

// do sends req with a service token and returns a 200 answer and its
// body; any other answer is a *ServiceError.
func (c *ServiceClient) do(req *http.Request) (*http.Response, []byte, error) {
	req.Header.Set("Authorization", c.Token(time.Hour))
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 2*maxRequestBody))
	if err != nil {
		return nil, nil, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, parseServiceError(resp, body)
	}
	return resp, body, nil
}
