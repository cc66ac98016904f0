package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/device/internal/clientcfg"
	"github.com/directmethods/iotdevice/sas"
)

// edgeInvokeAPIVersion is the api-version of module-to-module calls, the
// service API's current one (azure-iot-sdk-csharp ClientApiVersionHelper).
const edgeInvokeAPIVersion = "2021-04-12"

// edgeModuleIDHeader names the calling module to the edge hub, as the
// official SDKs' method clients send it (azure-iot-sdk-node
// device/core/src/device_method/method_client.ts).
const edgeModuleIDHeader = "x-ms-edge-moduleId"

// tlsHandshakeTimeout bounds the TLS handshake with the gateway, as
// ClientOptions.DialTimeout's default bounds the client's.
const tlsHandshakeTimeout = 30 * time.Second

// tokenRenewAt is the fraction of a token's lifetime after which the
// invoker asks the credential for a new one, as the client does.
const tokenRenewAt = 0.8

// maxInvokeAnswer bounds the answer read: a method payload is at most
// 128 KB, and the envelope is small.
const maxInvokeAnswer = 256 << 10

// MethodCall is a direct method to invoke with a MethodInvoker.
type MethodCall struct {
	// Name is the method's name; required.
	Name string
	// Payload is the method's JSON payload; nil sends none.
	Payload json.RawMessage
	// ResponseTimeout is how long the hub waits for the target's answer,
	// in whole seconds (rounded up), 5 s to 300 s. Zero: the hub's default
	// of 30 s.
	ResponseTimeout time.Duration
	// ConnectTimeout is how long the hub waits for an offline target to
	// connect, in whole seconds (rounded up), up to 300 s. Zero: not at all.
	ConnectTimeout time.Duration
}

// MethodResult is the target's answer.
type MethodResult struct {
	// Status is the status the target answered with.
	Status int
	// Payload is the target's payload, as the hub passed it.
	Payload json.RawMessage
}

// InvokeError is a call the hub refused or could not complete, with the
// hub's error code.
type InvokeError struct {
	// HTTPStatus is the HTTP status of the hub's answer.
	HTTPStatus int
	// Code is IoT Hub's numeric error code, such as 404103 (the target is
	// not online), or 0 when the answer gave none. The IoT Edge hub gives
	// none: its errors are an HTTP status and a message, 404 for a target
	// not connected to it within the connect timeout and 504 for one that
	// did not answer in time.
	Code int
	// Name is the code's name from the iothub-errorcode header, such as
	// "DeviceNotOnline", if the hub sent it.
	Name string
	// Message is the hub's explanation.
	Message string
}

func (e *InvokeError) Error() string {
	s := "edge: invoke method: HTTP " + strconv.Itoa(e.HTTPStatus)
	if e.Code != 0 {
		s += " " + strconv.Itoa(e.Code)
	}
	if e.Name != "" {
		s += " " + e.Name
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// MethodInvokerOptions configures a MethodInvoker. A nil pointer, and a
// zero field, means the default.
type MethodInvokerOptions struct {
	// Port is the gateway's HTTPS port. Default: 443.
	Port int
}

// MethodInvoker invokes direct methods on devices and modules through the
// IoT Edge hub a module client connects to: the module-to-module calls of
// the official SDKs' ModuleClient.InvokeMethod. Each call is
//
//	POST https://{gateway}/twins/{device}[/modules/{module}]/methods?api-version=2021-04-12
//
// with the service API's body, the module's own SAS token and the header
// x-ms-edge-moduleId: {device}/{module} naming the caller. It is safe for
// concurrent use; Close releases its idle connections.
//
// The edge hub reaches only the clients connected to it: the modules of
// its own device and its leaf devices. A call to any other identity fails
// with 404 once its connect timeout has passed.
type MethodInvoker struct {
	target    string // "https://gateway:port"
	caller    string // "{device}/{module}"
	resource  string
	cred      sas.Credential
	userAgent string
	http      *http.Client
	idle      *http.Transport

	mu    sync.Mutex
	token string // the current token, reused until renewAt of its lifetime
	renew time.Time
}

// NewMethodInvoker returns an invoker that calls as c's module, through
// c's gateway, with c's credential and TLS configuration. c must be a
// module client with a gateway (NewModuleClient, or a
// module connection string with GatewayHostName) and a token credential.
// c need not be running.
func NewMethodInvoker(c *device.Client, opts *MethodInvokerOptions) (*MethodInvoker, error) {
	cfg := clientcfg.Of(c)
	switch {
	case cfg.ModuleID == "":
		return nil, fmt.Errorf("%w: a method invoker calls as a module; the client is a device's", device.ErrInvalidConfig)
	case cfg.GatewayHostName == "":
		return nil, fmt.Errorf("%w: a method invoker calls through an IoT Edge gateway; the client has none", device.ErrInvalidConfig)
	case cfg.Credential.ClientCertificate() != nil:
		return nil, fmt.Errorf("%w: a method invoker authenticates with SAS tokens; the client's credential is a certificate", device.ErrInvalidConfig)
	}
	port := 443
	if opts != nil && opts.Port != 0 {
		port = opts.Port
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("%w: Port %d is out of range", device.ErrInvalidConfig, port)
	}
	tlsConfig, err := cfg.ClientTLS()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", device.ErrInvalidConfig, err)
	}
	proxy := http.ProxyFromEnvironment
	if p := cfg.Proxy; p != nil {
		proxy = func(r *http.Request) (*url.URL, error) { return p(r.URL) }
	}
	tr := &http.Transport{
		Proxy:               proxy,
		TLSClientConfig:     tlsConfig,
		TLSHandshakeTimeout: tlsHandshakeTimeout,
		IdleConnTimeout:     90 * time.Second,
	}
	return &MethodInvoker{
		target:    "https://" + net.JoinHostPort(cfg.GatewayHostName, strconv.Itoa(port)),
		caller:    cfg.DeviceID + "/" + cfg.ModuleID,
		resource:  cfg.Resource(),
		cred:      cfg.Credential,
		userAgent: cfg.UserAgent,
		http:      &http.Client{Transport: tr},
		idle:      tr,
	}, nil
}

// Invoke calls method call on the module moduleID of deviceID, or on the
// device itself when moduleID is empty, and returns its answer. A call the
// hub refuses or cannot complete (the target is offline or does not
// answer in time) returns an *InvokeError with the hub's error code. When
// ctx has no deadline, the call is bounded by its connect and response
// timeouts plus 15 s.
func (m *MethodInvoker) Invoke(ctx context.Context, deviceID, moduleID string, call MethodCall) (*MethodResult, error) {
	body, err := invokeBody(call)
	if err != nil {
		return nil, err
	}
	if deviceID == "" {
		return nil, fmt.Errorf("%w: empty device id", device.ErrInvalidConfig)
	}
	if _, ok := ctx.Deadline(); !ok {
		response := call.ResponseTimeout
		if response == 0 {
			response = 30 * time.Second
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, response+call.ConnectTimeout+15*time.Second)
		defer cancel()
	}
	token, err := m.currentToken(ctx)
	if err != nil {
		return nil, fmt.Errorf("edge: invoke method: get token: %w", err)
	}
	path := "/twins/" + url.PathEscape(deviceID)
	if moduleID != "" {
		path += "/modules/" + url.PathEscape(moduleID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.target+path+"/methods?api-version="+edgeInvokeAPIVersion, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("edge: invoke method: %w", err)
	}
	req.Header.Set("Authorization", token)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set(edgeModuleIDHeader, m.caller)
	req.Header.Set("User-Agent", m.userAgent)
	resp, err := m.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("edge: invoke method: %w", err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxInvokeAnswer))
	if err != nil {
		return nil, fmt.Errorf("edge: invoke method: read the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, parseInvokeError(resp.StatusCode, resp.Header.Get("iothub-errorcode"), answer)
	}
	var r struct {
		Status  *int            `json:"status"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(answer, &r); err != nil || r.Status == nil {
		return nil, fmt.Errorf("edge: invoke method: the answer is not {\"status\":…,\"payload\":…}")
	}
	return &MethodResult{Status: *r.Status, Payload: r.Payload}, nil
}

// Close releases the invoker's idle connections. It may be used again
// afterwards.
func (m *MethodInvoker) Close() error {
	m.idle.CloseIdleConnections()
	return nil
}

// currentToken returns the token of the last call until renewAt of its
// lifetime has passed, else a new one from the client's credential.
func (m *MethodInvoker) currentToken(ctx context.Context) (string, error) {
	m.mu.Lock()
	if m.token != "" && time.Now().Before(m.renew) {
		defer m.mu.Unlock()
		return m.token, nil
	}
	m.mu.Unlock()
	issued := time.Now()
	token, expiry, err := m.cred.Token(ctx, m.resource)
	if err != nil {
		return "", err
	}
	if token == "" {
		return "", errors.New("the credential gave no token")
	}
	m.mu.Lock()
	m.token, m.renew = token, issued.Add(time.Duration(tokenRenewAt*float64(expiry.Sub(issued))))
	m.mu.Unlock()
	return token, nil
}

// invokeBody encodes the service API's body of call.
func invokeBody(call MethodCall) ([]byte, error) {
	if call.Name == "" {
		return nil, fmt.Errorf("%w: empty method name", device.ErrInvalidConfig)
	}
	if call.ResponseTimeout < 0 || call.ConnectTimeout < 0 {
		return nil, fmt.Errorf("%w: negative method timeout", device.ErrInvalidConfig)
	}
	if len(call.Payload) > 0 && !json.Valid(call.Payload) {
		return nil, fmt.Errorf("%w: the payload is not JSON", device.ErrInvalidConfig)
	}
	b := struct {
		MethodName      string          `json:"methodName"`
		Payload         json.RawMessage `json:"payload,omitempty"`
		ResponseTimeout int64           `json:"responseTimeoutInSeconds,omitempty"`
		ConnectTimeout  int64           `json:"connectTimeoutInSeconds,omitempty"`
	}{call.Name, call.Payload, wholeSeconds(call.ResponseTimeout), wholeSeconds(call.ConnectTimeout)}
	return json.Marshal(b)
}

// wholeSeconds rounds d up to whole seconds.
func wholeSeconds(d time.Duration) int64 { return int64((d + time.Second - 1) / time.Second) }

// parseInvokeError reads the hub's error answer: IoT Hub's two-level
// {"Message":"{\"errorCode\":…,\"message\":…}"} (azure-iot-sdk-csharp
// IotHubExceptionResult), or a flat {"errorCode":…,"message":…}.
func parseInvokeError(status int, name string, body []byte) *InvokeError {
	e := &InvokeError{HTTPStatus: status, Name: name, Message: clipValue200(strings.TrimSpace(string(body)))}
	type inner struct {
		ErrorCode int    `json:"errorCode"`
		Message   string `json:"message"`
	}
	var outer struct {
		Message string `json:"Message"`
	}
	var in inner
	switch {
	case json.Unmarshal(body, &outer) == nil && outer.Message != "" && json.Unmarshal([]byte(outer.Message), &in) == nil && in.ErrorCode != 0:
	case json.Unmarshal(body, &in) == nil && in.ErrorCode != 0:
	case outer.Message != "":
		e.Message = clipValue200(outer.Message)
		return e
	default:
		return e
	}
	e.Code, e.Message = in.ErrorCode, clipValue200(in.Message)
	return e
}

func clipValue200(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
