package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	paho "github.com/eclipse/paho.mqtt.golang"
)

// The IoT Hub MQTT facts the raw device needs, as internal/mqttwire
// documents them with their sources. The raw device keeps its own copy so
// that it shares no code with the SDK it is compared with.
const (
	rawAPIVersion      = "2021-04-12"
	rawMethodsFilter   = "$iothub/methods/POST/#"
	rawRequestPrefix   = "$iothub/methods/POST/"
	rawRIDSeparator    = "/?$rid="
	rawResponsePrefix  = "$iothub/methods/res/"
	rawWebSocketPath   = "/$iothub/websocket"
	rawDisconnectQuiet = 250 // ms paho may take to send DISCONNECT
)

// rawMQTT is the echo device written directly on paho.mqtt.golang: its own
// TLS or WebSocket dial, CONNECT, SUBSCRIBE, topic parsing and PUBLISH of
// the answer, and nothing else.
type rawMQTT struct {
	client paho.Client
	qos    byte // of the answers
}

// connectRawMQTT connects as the identity of connectionString and returns
// once the hub granted the subscription; it answers at QoS qos.
func connectRawMQTT(ctx context.Context, webSocket bool, qos byte, t *Target, connectionString string) (Device, error) {
	cs, password, err := rawIdentity(connectionString)
	if err != nil {
		return nil, err
	}

	port := t.MQTTPort
	if webSocket {
		port = t.HTTPSPort
	}
	if port == 0 {
		port = 8883
		if webSocket {
			port = 443
		}
	}
	address := net.JoinHostPort(cs.HostName, strconv.Itoa(port))
	tlsConfig := &tls.Config{RootCAs: t.Roots, ServerName: cs.HostName, MinVersion: tls.VersionTLS12}

	opts := paho.NewClientOptions()
	opts.AddBroker("ssl://" + address) // the dial below replaces paho's own
	opts.SetCustomOpenConnectionFn(func(*url.URL, paho.ClientOptions) (net.Conn, error) {
		if webSocket {
			return dialRawWebSocket(ctx, address, tlsConfig, "mqtt")
		}
		d := tls.Dialer{Config: tlsConfig}
		return d.DialContext(ctx, "tcp", address)
	})
	opts.SetProtocolVersion(4)
	opts.SetClientID(cs.DeviceID)
	opts.SetUsername(cs.HostName + "/" + cs.DeviceID + "/?api-version=" + rawAPIVersion)
	opts.SetPassword(password)
	opts.SetCleanSession(false)
	opts.SetKeepAlive(30 * time.Second)
	opts.SetAutoReconnect(false)
	opts.SetConnectRetry(false)
	if deadline, ok := ctx.Deadline(); ok {
		opts.SetConnectTimeout(max(time.Until(deadline), time.Millisecond))
	}
	d := &rawMQTT{qos: qos}
	d.client = paho.NewClient(opts)
	if err := d.connect(ctx); err != nil {
		return nil, fmt.Errorf("bench: raw device: connect: %w", err)
	}
	if err := wait(ctx, d.client.Subscribe(rawMethodsFilter, 0, d.onRequest)); err != nil {
		d.Close()
		return nil, fmt.Errorf("bench: raw device: subscribe: %w", err)
	}
	return d, nil
}

// connect waits for the CONNACK. When ctx ends first it still waits for
// paho's connect goroutine (the dial honours ctx, the handshake the
// connect timeout), so nothing outlives a failed connect.
func (d *rawMQTT) connect(ctx context.Context) error {
	tok := d.client.Connect()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		<-tok.Done()
		if tok.Error() == nil {
			d.client.Disconnect(0)
		}
		return context.Cause(ctx)
	}
}

// wait waits for a paho token or ctx.
func wait(ctx context.Context, tok paho.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// onRequest answers one request; paho calls it on its router goroutine. It
// does not wait for the publish, which paho forbids in a handler.
func (d *rawMQTT) onRequest(_ paho.Client, m paho.Message) {
	name, rid, ok := parseMethodTopic(m.Topic())
	if !ok {
		return // not a request; nothing can be answered
	}
	status, body := 200, echoPayload(m.Payload())
	if name != EchoMethod {
		status, body = 501, []byte(`{"error":"unknown method"}`)
	}
	d.client.Publish(rawResponsePrefix+strconv.Itoa(status)+rawRIDSeparator+rid, d.qos, false, body)
}

// parseMethodTopic splits "$iothub/methods/POST/{name}/?$rid={rid}[&…]".
func parseMethodTopic(topic string) (name, rid string, ok bool) {
	rest, ok := strings.CutPrefix(topic, rawRequestPrefix)
	if !ok {
		return "", "", false
	}
	name, query, ok := strings.Cut(rest, rawRIDSeparator)
	if !ok || name == "" || strings.Contains(name, "/") {
		return "", "", false
	}
	rid, _, _ = strings.Cut(query, "&")
	if rid == "" || strings.Contains(rid, "/") {
		return "", "", false
	}
	return name, rid, true
}

// Close disconnects and waits for paho's goroutines.
func (d *rawMQTT) Close() error {
	d.client.Disconnect(rawDisconnectQuiet)
	return nil
}

// dialRawWebSocket opens wss://address/$iothub/websocket with subprotocol
// and returns it as a stream.
func dialRawWebSocket(ctx context.Context, address string, tlsConfig *tls.Config, subprotocol string) (net.Conn, error) {
	httpTransport := &http.Transport{TLSClientConfig: tlsConfig.Clone()} // HTTP/1.1: no ForceAttemptHTTP2
	defer httpTransport.CloseIdleConnections()
	c, _, err := websocket.Dial(ctx, "wss://"+address+rawWebSocketPath, &websocket.DialOptions{
		HTTPClient:   &http.Client{Transport: httpTransport},
		Subprotocols: []string{subprotocol},
	})
	if err != nil {
		return nil, err
	}
	if c.Subprotocol() != subprotocol {
		c.CloseNow()
		return nil, fmt.Errorf("bench: raw device: hub chose subprotocol %q", c.Subprotocol())
	}
	c.SetReadLimit(1 << 20)
	return websocket.NetConn(context.Background(), c, websocket.MessageBinary), nil
}
