package workload

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Calls, as *Error.Call names them.
const (
	CallSign        = "sign"
	CallTrustBundle = "trust-bundle"
)

// maxAnswer bounds the body read from the runtime: a digest is a few dozen
// bytes, a trust bundle a few certificates.
const maxAnswer = 1 << 20

// ErrInvalidURI reports a workload URI that is neither unix:///path nor
// http://host[:port].
var ErrInvalidURI = errors.New("workload: invalid URI")

// Client calls one IoT Edge runtime's workload API. It keeps no connection
// open between calls (tokens are signed about once an hour), so it needs
// no Close. It is safe for concurrent use.
type Client struct {
	base       string // "http://host:port", or a placeholder host for a unix socket
	apiVersion string
	http       *http.Client
}

// NewClient returns a client of the workload API at uri (the runtime's
// IOTEDGE_WORKLOADURI: unix:///var/run/iotedge/workload.sock or
// http://host:port) that sends apiVersion (IOTEDGE_APIVERSION) with every
// request. It does no I/O.
func NewClient(uri, apiVersion string) (*Client, error) {
	network, address, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	if apiVersion == "" {
		return nil, errors.New("workload: empty api version")
	}
	base := "http://" + address
	if network == "unix" {
		base = "http://workload" // any host: the socket is dialled below
	}
	var dialer net.Dialer
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, address)
		},
		DisableKeepAlives:     true, // no idle connection outlives a call
		ResponseHeaderTimeout: 30 * time.Second,
		Proxy:                 nil, // the runtime is local: never through a proxy
	}
	return &Client{base: base, apiVersion: apiVersion, http: &http.Client{Transport: tr}}, nil
}

// ParseURI splits a workload URI into a network and address for net.Dial:
// "unix" and an absolute socket path for unix:///path, "tcp" and host:port
// for http://host[:port] (port 80 when omitted). Errors wrap
// ErrInvalidURI.
func ParseURI(uri string) (network, address string, err error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", "", fmt.Errorf("%w: %q does not parse", ErrInvalidURI, clip(uri))
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", "", fmt.Errorf("%w: %q has parts a workload URI has not (user, query, fragment)", ErrInvalidURI, clip(uri))
	}
	switch u.Scheme {
	case "unix":
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") || strings.HasSuffix(u.Path, "/") {
			return "", "", fmt.Errorf("%w: %q: want unix:///absolute/path/to/socket", ErrInvalidURI, clip(uri))
		}
		return "unix", u.Path, nil
	case "http":
		if u.Host == "" || (u.Path != "" && u.Path != "/") {
			return "", "", fmt.Errorf("%w: %q: want http://host[:port]", ErrInvalidURI, clip(uri))
		}
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "80")
		}
		h, port, err := net.SplitHostPort(host)
		if n, perr := strconv.Atoi(port); err != nil || h == "" || perr != nil || n < 1 || n > 65535 {
			return "", "", fmt.Errorf("%w: %q: want http://host[:port]", ErrInvalidURI, clip(uri))
		}
		return "tcp", host, nil
	}
	return "", "", fmt.Errorf("%w: %q: the scheme must be unix or http", ErrInvalidURI, clip(uri))
}

// signRequest is the body of the sign call.
type signRequest struct {
	KeyID string `json:"keyId"`
	Algo  string `json:"algo"`
	Data  string `json:"data"`
}

// Sign asks the runtime for the HMAC-SHA256 of data under the primary key
// of module moduleID at generation generationID, and returns the digest.
// For a SAS token, data is "<url-encoded resource>\n<expiry>".
func (c *Client) Sign(ctx context.Context, moduleID, generationID string, data []byte) ([]byte, error) {
	body, err := json.Marshal(signRequest{KeyID: "primary", Algo: "HMACSHA256", Data: base64.StdEncoding.EncodeToString(data)})
	if err != nil {
		return nil, &Error{Call: CallSign, Err: err}
	}
	path := "/modules/" + url.PathEscape(moduleID) + "/genid/" + url.PathEscape(generationID) + "/sign"
	answer, err := c.do(ctx, CallSign, http.MethodPost, path, body)
	if err != nil {
		return nil, err
	}
	var r struct {
		Digest *string `json:"digest"`
	}
	if err := json.Unmarshal(answer, &r); err != nil || r.Digest == nil {
		return nil, &Error{Call: CallSign, StatusCode: http.StatusOK, Message: "the answer has no digest"}
	}
	digest, err := base64.StdEncoding.DecodeString(*r.Digest)
	if err != nil || len(digest) == 0 {
		return nil, &Error{Call: CallSign, StatusCode: http.StatusOK, Message: "the digest is not base64"}
	}
	return digest, nil
}

// TrustBundle returns the PEM certificates the module must trust, among
// them the CA of the edge hub's server certificate.
func (c *Client) TrustBundle(ctx context.Context) ([]byte, error) {
	answer, err := c.do(ctx, CallTrustBundle, http.MethodGet, "/trust-bundle", nil)
	if err != nil {
		return nil, err
	}
	var r struct {
		Certificate string `json:"certificate"`
	}
	if err := json.Unmarshal(answer, &r); err != nil || r.Certificate == "" {
		return nil, &Error{Call: CallTrustBundle, StatusCode: http.StatusOK, Message: "the answer has no certificate"}
	}
	return []byte(r.Certificate), nil
}

// do sends one request and returns the body of a 200 answer.
func (c *Client) do(ctx context.Context, call, method, path string, body []byte) ([]byte, error) {
	target := c.base + path + "?api-version=" + url.QueryEscape(c.apiVersion)
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, &Error{Call: call, Err: err}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &Error{Call: call, Err: err}
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, &Error{Call: call, StatusCode: resp.StatusCode, Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &Error{Call: call, StatusCode: resp.StatusCode, Message: errorMessage(answer)}
	}
	return answer, nil
}

// errorMessage reads the runtime's {"message":"…"} error body, or the raw
// text, clipped.
func errorMessage(body []byte) string {
	var e struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil && e.Message != "" {
		return clip(e.Message)
	}
	return clip(strings.TrimSpace(string(body)))
}

// clip shortens s for an error message.
func clip(s string) string {
	const limit = 200
	if len(s) > limit {
		return s[:limit] + "…"
	}
	return s
}
