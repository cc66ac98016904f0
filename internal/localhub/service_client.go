package localhub

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/directmethods/iotdevice/internal/idcheck"
	"github.com/directmethods/iotdevice/sas"
)

// serviceAPIVersion is the REST api-version the client sends, the one the
// C# service SDK sends; it is among supportedAPIVersions.
const serviceAPIVersion = "2021-04-12"

// MethodCall is the body of a method invocation.
type MethodCall struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload,omitempty"`
	ResponseTimeoutInSeconds int             `json:"responseTimeoutInSeconds,omitempty"`
	ConnectTimeoutInSeconds  int             `json:"connectTimeoutInSeconds,omitempty"`
}

// MethodResult is the answer of a successful invocation: the device's
// status and payload. Payload holds the device's answer bytes as the hub
// passed them through: JSON when the device answered with JSON, "null" when
// it sent no body, and otherwise the bytes it sent, which are not JSON (use
// json.Valid to tell); IoT Hub passes such answers through unchanged too.
type MethodResult struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload"`
}

// ServiceError is a non-200 answer of the REST API.
type ServiceError struct {
	HTTPStatus int
	ErrorCode  int    // such as 404103; 0 when the body had none
	Name       string // the iothub-errorcode header, such as "DeviceNotOnline"
	Message    string
}

func (e *ServiceError) Error() string {
	return fmt.Sprintf("localhub: invoke: HTTP %d: %d %s: %s", e.HTTPStatus, e.ErrorCode, e.Name, e.Message)
}

// ErrInvalidServiceConnectionString is wrapped by NewServiceClient's
// errors about its connection string.
var ErrInvalidServiceConnectionString = errors.New("localhub: invalid service connection string")

// ServiceClient invokes direct methods through a hub's REST API, as a cloud
// application would. It is safe for concurrent use.
type ServiceClient struct {
	hostName  string // for tokens, TLS and the Host header
	port      string
	keyName   string
	key       []byte
	transport *http.Transport
	client    *http.Client
}

// NewServiceClient returns a client for the hub reached at baseURL
// ("https://127.0.0.1:8443"), authenticating with a service connection
// string (HostName=…;SharedAccessKeyName=…;SharedAccessKey=…) and trusting
// roots (nil: the system's roots). It always connects to baseURL's address
// and verifies the certificate for the connection string's HostName, so a
// host name that does not resolve still works.
func NewServiceClient(baseURL string, serviceConnectionString string, roots *x509.CertPool) (*ServiceClient, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("localhub: base URL must be https://host[:port]")
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	dialAddr := net.JoinHostPort(u.Hostname(), port)
	hostName, keyName, key, err := parseServiceConnectionString(serviceConnectionString)
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: 30 * time.Second}
	transport := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: hostName, MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, dialAddr)
		},
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
		TLSHandshakeTimeout: 30 * time.Second,
	}
	return &ServiceClient{
		hostName:  hostName,
		port:      port,
		keyName:   keyName,
		key:       key,
		transport: transport,
		client:    &http.Client{Transport: transport},
	}, nil
}

// parseServiceConnectionString reads HostName, SharedAccessKeyName and
// SharedAccessKey. (sas.ParseConnectionString is for device strings, which
// require a DeviceId.)
func parseServiceConnectionString(s string) (hostName, keyName string, key []byte, err error) {
	values := map[string]string{}
	for _, pair := range strings.Split(strings.TrimSpace(s), ";") {
		if pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			return "", "", nil, fmt.Errorf("%w: a pair has no '='", ErrInvalidServiceConnectionString)
		}
		values[strings.TrimSpace(k)] = v
	}
	hostName, keyName = values["HostName"], values["SharedAccessKeyName"]
	if err := idcheck.HostName(hostName); err != nil {
		return "", "", nil, fmt.Errorf("%w: HostName: %w", ErrInvalidServiceConnectionString, err)
	}
	if keyName == "" {
		return "", "", nil, fmt.Errorf("%w: missing SharedAccessKeyName", ErrInvalidServiceConnectionString)
	}
	if key, err = sas.DecodeKey(values["SharedAccessKey"]); err != nil {
		return "", "", nil, fmt.Errorf("%w: SharedAccessKey: %w", ErrInvalidServiceConnectionString, err)
	}
	return hostName, keyName, key, nil
}

// Invoke calls POST /twins/{deviceID}[/modules/{moduleID}]/methods and
// returns the device's answer. A non-200 answer is a *ServiceError. When
// ctx has no deadline, the call is bounded by the connect and response
// timeouts plus 15 seconds, as the official service SDK does.
func (c *ServiceClient) Invoke(ctx context.Context, deviceID, moduleID string, call MethodCall) (*MethodResult, error) {
	path := "/twins/" + url.PathEscape(deviceID)
	if moduleID != "" {
		path += "/modules/" + url.PathEscape(moduleID)
	}
	body, err := json.Marshal(call)
	if err != nil {
		return nil, fmt.Errorf("localhub: encode method call: %w", err)
	}
	ctx, cancel := boundCall(ctx, call.ResponseTimeoutInSeconds, call.ConnectTimeoutInSeconds)
	defer cancel()
	target := "https://" + net.JoinHostPort(c.hostName, c.port) + path + "/methods?api-version=" + serviceAPIVersion
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("localhub: invoke: %w", err)
	}
	req.Header.Set("Authorization", c.Token(time.Hour))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("localhub: invoke: %w", err)
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, 2*maxRequestBody))
	if err != nil {
		return nil, fmt.Errorf("localhub: invoke: read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, parseServiceError(resp, respBody)
	}
	result, err := decodeMethodResult(respBody)
	if err != nil {
		return nil, fmt.Errorf("localhub: invoke: decode answer: %w", err)
	}
	return result, nil
}

// boundCall bounds a call whose ctx has no deadline by its connect and
// response timeouts (the hub's default when responseSeconds is 0) plus 15
// seconds, as the official service SDK does; a ctx with a deadline is
// kept.
func boundCall(ctx context.Context, responseSeconds, connectSeconds int) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	if responseSeconds <= 0 {
		responseSeconds = int(defaultResponseTimeout / time.Second)
	}
	return context.WithTimeout(ctx, time.Duration(responseSeconds+connectSeconds+15)*time.Second)
}

// Token returns a service SAS token for the whole hub, valid for lifetime.
func (c *ServiceClient) Token(lifetime time.Duration) string {
	return sas.Sign(c.key, c.hostName, c.keyName, time.Now().Add(lifetime))
}

// parseServiceError reads the two-level error body.
func parseServiceError(resp *http.Response, body []byte) *ServiceError {
	e := &ServiceError{HTTPStatus: resp.StatusCode, Name: resp.Header.Get("iothub-errorcode"), Message: strings.TrimSpace(clip(string(body)))}
	var outer errorBody
	if json.Unmarshal(body, &outer) != nil {
		return e
	}
	var inner errorBodyInner
	if json.Unmarshal([]byte(outer.Message), &inner) != nil {
		e.Message = outer.Message
		return e
	}
	e.ErrorCode, e.Message = inner.ErrorCode, inner.Message
	return e
}

// closeIdleConnections releases the client's kept-alive connections.
func (c *ServiceClient) closeIdleConnections() { c.transport.CloseIdleConnections() }
