package localhub

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// testLimit is the scaled-down bound the tests give the hub.
const testLimit = 2 * time.Second

// httpsConn is a raw connection to the hub's HTTPS port, for requests
// written byte by byte.
type httpsConn struct {
	conn  net.Conn
	r     *bufio.Reader
	start time.Time     // just before the dial
	slack time.Duration // how late a close may be on this machine
}

// dialHTTPS opens a connection to the HTTPS port, with the TLS handshake
// unless tcpOnly. The slack for a close is derived from how long the dial
// took.
func dialHTTPS(t *testing.T, h *Hub, tcpOnly bool) *httpsConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	start := time.Now()
	var conn net.Conn
	var err error
	if tcpOnly {
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", h.HTTPSAddr())
	} else {
		cfg := &tls.Config{RootCAs: h.CertPool(), ServerName: h.HostName(), NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12}
		conn, err = (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", h.HTTPSAddr())
	}
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return &httpsConn{conn: conn, r: bufio.NewReader(conn), start: start, slack: time.Second + 20*time.Since(start)}
}

// write sends raw bytes.
func (c *httpsConn) write(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// readResponse reads one HTTP response and its body, waiting at most until
// deadline.
func (c *httpsConn) readResponse(t *testing.T, deadline time.Time) *http.Response {
	t.Helper()
	_ = c.conn.SetReadDeadline(deadline)
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		t.Fatalf("no answer %v after the dial: %v", time.Since(c.start).Round(time.Millisecond), err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatalf("read answer body: %v", err)
	}
	resp.Body.Close()
	return resp
}

// waitClosed waits for the hub to close the connection, at most bound plus
// the slack after since, and returns when it closed, measured from since.
func (c *httpsConn) waitClosed(t *testing.T, since time.Time, bound time.Duration) time.Duration {
	t.Helper()
	_ = c.conn.SetReadDeadline(since.Add(bound + c.slack))
	_, err := io.Copy(io.Discard, c.r)
	elapsed := time.Since(since)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open %v later; the bound is %v", elapsed.Round(time.Millisecond), bound)
	}
	return elapsed
}

// invokeHead is the start of an invocation request without its body.
func invokeHead(path, auth string, contentLength int) string {
	head := "POST " + path + " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
	if auth != "" {
		head += "Authorization: " + auth + "\r\n"
	}
	return head + fmt.Sprintf("Content-Length: %d\r\n\r\n", contentLength)
}

// TestHTTPSUnauthenticatedBound checks that a peer that has not
// authenticated cannot hold an HTTPS connection longer than the bound,
// counted from the dial, whatever it does or does not send.
func TestHTTPSUnauthenticatedBound(t *testing.T) {
	t.Parallel()
	h := startHub(t, Options{Devices: []string{"dev"}, limits: httpLimits{unauthenticated: testLimit}})
	const path = "/twins/dev/methods?api-version=2021-04-12"
	tests := []struct {
		name    string
		tcpOnly bool
		send    func(t *testing.T, c *httpsConn)
	}{
		{"no TLS handshake", true, func(*testing.T, *httpsConn) {}},
		{"nothing after the handshake", false, func(*testing.T, *httpsConn) {}},
		{"headers never finished", false, func(t *testing.T, c *httpsConn) {
			c.write(t, "POST "+path+" HTTP/1.1\r\nHost: localhost\r\n")
		}},
		{"idle after an answered request", false, func(t *testing.T, c *httpsConn) {
			c.write(t, "GET /nothing HTTP/1.1\r\nHost: localhost\r\n\r\n")
			if resp := c.readResponse(t, c.start.Add(testLimit)); resp.StatusCode != http.StatusNotFound {
				t.Errorf("status = %d, want 404", resp.StatusCode)
			}
		}},
		{"authenticated request with a slow body", false, func(t *testing.T, c *httpsConn) {
			c.write(t, invokeHead(path, h.ServiceClient().Token(time.Hour), 1000)+`{"methodNa`)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dialHTTPS(t, h, tt.tcpOnly)
			tt.send(t, c)
			elapsed := c.waitClosed(t, c.start, testLimit)
			if elapsed < testLimit {
				t.Errorf("closed %v after the dial, before the bound of %v", elapsed, testLimit)
			}
		})
	}
}

// TestHTTPSRefusesSlowBodyAtOnce checks that a request that fails
// authentication is answered 401 without waiting for its body, and that
// the connection is then closed.
func TestHTTPSRefusesSlowBodyAtOnce(t *testing.T) {
	t.Parallel()
	h := startHub(t, Options{Devices: []string{"dev"}, limits: httpLimits{unauthenticated: testLimit}})
	const path = "/twins/dev/methods?api-version=2021-04-12"
	tests := []struct {
		name, path, auth string
		wantStatus       int
		wantCode         string
	}{
		{"no token", path, "", 401, "IotHubUnauthorizedAccess"},
		{"bad token", path, "SharedAccessSignature sr=localhost&sig=x&se=1&skn=iothubowner", 401, "IotHubUnauthorizedAccess"},
		{"no api-version", "/twins/dev/methods", "", 400, "InvalidProtocolVersion"},
		{"unknown path", "/twins/dev/twin?api-version=2021-04-12", "", 404, "InvalidOperation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dialHTTPS(t, h, false)
			c.write(t, invokeHead(tt.path, tt.auth, 1000)+`{"methodNa`)
			resp := c.readResponse(t, c.start.Add(testLimit))
			if resp.StatusCode != tt.wantStatus || resp.Header.Get("iothub-errorcode") != tt.wantCode {
				t.Errorf("answer = %d %q, want %d %q", resp.StatusCode, resp.Header.Get("iothub-errorcode"), tt.wantStatus, tt.wantCode)
			}
			if elapsed := c.waitClosed(t, c.start, 0); elapsed >= testLimit {
				t.Errorf("closed %v after the dial, want before the bound of %v", elapsed, testLimit)
			}
		})
	}
}

// authenticatedExchange sends a complete, authenticated request (to an
// unknown device, so it needs no device) and reads its answer, leaving the
// connection kept alive. It returns the time just before the request was
// sent, which is before the hub started waiting for the next one.
func authenticatedExchange(t *testing.T, h *Hub, c *httpsConn) time.Time {
	t.Helper()
	body := `{"methodName":"m"}`
	sent := time.Now()
	c.write(t, invokeHead("/twins/nobody/methods?api-version=2021-04-12", h.ServiceClient().Token(time.Hour), len(body))+body)
	resp := c.readResponse(t, time.Now().Add(waitTimeout))
	if resp.StatusCode != http.StatusNotFound || resp.Close {
		t.Fatalf("answer = %d (close %v), want 404 kept alive", resp.StatusCode, resp.Close)
	}
	return sent
}

// TestHTTPSIdleBound checks that a kept-alive connection that carries no
// request is closed after the idle bound.
func TestHTTPSIdleBound(t *testing.T) {
	t.Parallel()
	h := startHub(t, Options{limits: httpLimits{idle: testLimit}})
	c := dialHTTPS(t, h, false)
	sent := authenticatedExchange(t, h, c)
	if elapsed := c.waitClosed(t, sent, testLimit); elapsed < testLimit {
		t.Errorf("closed %v after the last request, before the idle bound of %v", elapsed, testLimit)
	}
}

// TestHTTPSBodyBound checks that a slow body on a connection that has
// already authenticated is cut after the body bound.
func TestHTTPSBodyBound(t *testing.T) {
	t.Parallel()
	h := startHub(t, Options{limits: httpLimits{body: testLimit}})
	c := dialHTTPS(t, h, false)
	authenticatedExchange(t, h, c)
	sent := time.Now()
	c.write(t, invokeHead("/twins/nobody/methods?api-version=2021-04-12", h.ServiceClient().Token(time.Hour), 1000)+`{"methodNa`)
	if elapsed := c.waitClosed(t, sent, testLimit); elapsed < testLimit {
		t.Errorf("closed %v after the request, before the bound of %v", elapsed, testLimit)
	}
}

// TestWebSocketOutlivesUnauthenticatedBound checks that a device connected
// over WebSockets is not cut by the HTTPS port's bound for unauthenticated
// peers: after the upgrade the protocol session owns the connection.
func TestWebSocketOutlivesUnauthenticatedBound(t *testing.T) {
	t.Parallel()
	h := startHub(t, Options{Devices: []string{"dev"}, limits: httpLimits{unauthenticated: testLimit, idle: testLimit, body: testLimit}})
	d := connectDevice(t, h, "dev", deviceOptions{webSocket: true})
	select {
	case <-d.lost:
		t.Fatal("the hub closed the WebSocket device's connection")
	case <-time.After(2 * testLimit): // the bounds have passed
	}
	res, err := invoke(t, h, "dev", MethodCall{MethodName: "m", Payload: []byte(`"still here"`)})
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	if res.Status != 200 || !strings.Contains(string(res.Payload), "still here") {
		t.Errorf("result = %d %s", res.Status, res.Payload)
	}
}
