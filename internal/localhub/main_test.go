package localhub

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/directmethods/iotdevice/internal/leakcheck"
	"github.com/directmethods/iotdevice/internal/mqttwire"
	"github.com/directmethods/iotdevice/sas"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// waitTimeout bounds every wait of the tests.
const waitTimeout = 20 * time.Second

// startHub starts an in-memory hub on free ports and closes it at the end
// of the test.
func startHub(t testing.TB, opts Options) *Hub {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	h, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// answerFunc decides a test device's answer to a method request; ok false
// means no answer at all.
type answerFunc func(name string, payload []byte) (status int, body []byte, ok bool)

// echo answers 200 with the request's payload, or {} when it had none.
func echo(name string, payload []byte) (int, []byte, bool) {
	if len(payload) == 0 {
		return 200, []byte(`{}`), true
	}
	return 200, payload, true
}

// deviceOptions shape a test device.
type deviceOptions struct {
	webSocket   bool
	persistent  bool             // CleanSession=0
	cert        *tls.Certificate // X.509 instead of a SAS token
	noSubscribe bool
	qos         byte // QoS of the method subscription and responses
	answer      answerFunc
}

// testDevice is a minimal device built on paho: it connects as the SDKs
// do (internal/mqttwire describes the CONNECT), subscribes to method
// requests and answers them.
type testDevice struct {
	client   mqtt.Client
	identity string
	lost     chan struct{} // closed when the connection is lost
}

// deviceUsername returns the MQTT username of an identity.
func deviceUsername(host, identity string) string {
	return host + "/" + identity + "/?api-version=2021-04-12&DeviceClientType=localhub-test%2F1.0"
}

// deviceToken signs a token for an identity with the key of its
// connection string.
func deviceToken(t testing.TB, connectionString string, expiry time.Time) string {
	t.Helper()
	cs, err := sas.ParseConnectionString(connectionString)
	if err != nil {
		t.Fatalf("ParseConnectionString: %v", err)
	}
	key, err := sas.DecodeKey(cs.SharedAccessKey)
	if err != nil {
		t.Fatalf("DecodeKey: %v", err)
	}
	return sas.Sign(key, sas.Resource(cs.HostName, cs.DeviceID, cs.ModuleID), "", expiry)
}

// dialDevice connects a test device and, unless told otherwise, subscribes
// to method requests before returning.
func dialDevice(t testing.TB, h *Hub, identity string, o deviceOptions) (*testDevice, error) {
	t.Helper()
	if o.answer == nil {
		o.answer = echo
	}
	tlsConfig := &tls.Config{RootCAs: h.CertPool(), ServerName: h.HostName(), MinVersion: tls.VersionTLS12}
	opts := mqtt.NewClientOptions().
		SetClientID(identity).
		SetUsername(deviceUsername(h.HostName(), identity)).
		SetCleanSession(!o.persistent).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetOrderMatters(false).
		SetKeepAlive(60 * time.Second).
		SetProtocolVersion(4).
		SetConnectTimeout(waitTimeout)
	if o.cert != nil {
		tlsConfig.Certificates = []tls.Certificate{*o.cert}
	} else {
		cs, err := h.ConnectionString(identity)
		if err != nil {
			return nil, err
		}
		opts.SetPassword(deviceToken(t, cs, time.Now().Add(time.Hour)))
	}
	opts.SetTLSConfig(tlsConfig)
	if o.webSocket {
		opts.AddBroker("wss://" + h.HTTPSAddr() + "/$iothub/websocket")
	} else {
		opts.AddBroker("tls://" + h.MQTTAddr())
	}
	d := &testDevice{identity: identity, lost: make(chan struct{})}
	var lostOnce sync.Once
	opts.SetConnectionLostHandler(func(mqtt.Client, error) { lostOnce.Do(func() { close(d.lost) }) })
	handler := func(c mqtt.Client, m mqtt.Message) {
		name, rid, ok := parseRequestTopic(m.Topic())
		if !ok {
			t.Errorf("device %s: unexpected topic %q", identity, m.Topic())
			return
		}
		status, body, ok := o.answer(name, m.Payload())
		if !ok {
			return
		}
		c.Publish(fmt.Sprintf("$iothub/methods/res/%d/?$rid=%s", status, rid), o.qos, false, body)
	}
	// Persistent sessions receive requests without subscribing again.
	opts.SetDefaultPublishHandler(handler)
	d.client = mqtt.NewClient(opts)
	if err := wait(d.client.Connect()); err != nil {
		return nil, err
	}
	t.Cleanup(d.close)
	if !o.noSubscribe {
		if err := wait(d.client.Subscribe("$iothub/methods/POST/#", o.qos, handler)); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// connectDevice is dialDevice that fails the test on error.
func connectDevice(t testing.TB, h *Hub, identity string, o deviceOptions) *testDevice {
	t.Helper()
	d, err := dialDevice(t, h, identity, o)
	if err != nil {
		t.Fatalf("connect %s: %v", identity, err)
	}
	return d
}

func (d *testDevice) close() { d.client.Disconnect(0) }

// waitLost waits until the hub has closed the device's connection.
func (d *testDevice) waitLost(t testing.TB) {
	t.Helper()
	select {
	case <-d.lost:
	case <-time.After(waitTimeout):
		t.Fatalf("device %s: connection not closed by the hub", d.identity)
	}
}

func wait(tok mqtt.Token) error {
	if !tok.WaitTimeout(waitTimeout) {
		return errors.New("mqtt token timed out")
	}
	return tok.Error()
}

// parseRequestTopic splits "$iothub/methods/POST/{name}/?$rid={rid}" as
// the device adapter does.
func parseRequestTopic(topic string) (name, rid string, ok bool) {
	name, rid, err := mqttwire.ParseRequestTopic(topic)
	return name, rid, err == nil
}

// invoke calls a method through the REST API with the hub's service client.
func invoke(t testing.TB, h *Hub, identity string, call MethodCall) (*MethodResult, error) {
	t.Helper()
	deviceID, moduleID, _ := strings.Cut(identity, "/")
	ctx, cancel := context.WithTimeout(t.Context(), 2*waitTimeout)
	defer cancel()
	return h.ServiceClient().Invoke(ctx, deviceID, moduleID, call)
}

// rawConn is a bare TLS connection for writing exact MQTT bytes.
type rawConn struct {
	conn *tls.Conn
	r    *bufio.Reader
}

func dialRaw(t testing.TB, h *Hub, cert *tls.Certificate) *rawConn {
	t.Helper()
	cfg := &tls.Config{RootCAs: h.CertPool(), ServerName: h.HostName(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	d := &tls.Dialer{Config: cfg}
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", h.MQTTAddr())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	conn := c.(*tls.Conn)
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	return &rawConn{conn: conn, r: bufio.NewReader(conn)}
}

func (c *rawConn) write(t testing.TB, p packets.ControlPacket) {
	t.Helper()
	if err := p.Write(c.conn); err != nil {
		t.Fatalf("write %T: %v", p, err)
	}
}

func (c *rawConn) read(t testing.TB) packets.ControlPacket {
	t.Helper()
	p, err := packets.ReadPacket(c.r)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return p
}

// waitClosed checks that the hub closes the connection, reading and
// discarding anything it still sends.
func (c *rawConn) waitClosed(t testing.TB) {
	t.Helper()
	for {
		if _, err := packets.ReadPacket(c.r); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("connection still open after %v", waitTimeout)
			}
			return
		}
	}
}

// connectPacket builds a CONNECT for an identity.
func connectPacket(host, identity, password string, clean bool) *packets.ConnectPacket {
	c := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	c.ProtocolName, c.ProtocolVersion = "MQTT", 4
	c.ClientIdentifier = identity
	c.CleanSession = clean
	c.UsernameFlag, c.Username = true, deviceUsername(host, identity)
	if password != "" {
		c.PasswordFlag, c.Password = true, []byte(password)
	}
	c.Keepalive = 60
	return c
}

// connectRaw performs CONNECT on a raw connection and returns the CONNACK.
func connectRaw(t testing.TB, h *Hub, identity string) *rawConn {
	t.Helper()
	cs, err := h.ConnectionString(identity)
	if err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, h, nil)
	c.write(t, connectPacket(h.HostName(), identity, deviceToken(t, cs, time.Now().Add(time.Hour)), true))
	ack, ok := c.read(t).(*packets.ConnackPacket)
	if !ok || ack.ReturnCode != 0 {
		t.Fatalf("CONNACK = %v, want accepted", ack)
	}
	return c
}

// subscribe subscribes a raw connection to method requests.
func subscribe(t testing.TB, c *rawConn, qos byte) {
	t.Helper()
	sub := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
	sub.MessageID = 1
	sub.Topics, sub.Qoss = []string{mqttwire.MethodsFilter}, []byte{qos}
	c.write(t, sub)
	ack, ok := c.read(t).(*packets.SubackPacket)
	if !ok || len(ack.ReturnCodes) != 1 || ack.ReturnCodes[0] != min(qos, 1) {
		t.Fatalf("SUBACK = %v", ack)
	}
}

// readRequest reads the next method request, acknowledging QoS 1.
func readRequest(t testing.TB, c *rawConn) (topic string, payload []byte) {
	t.Helper()
	p, ok := c.read(t).(*packets.PublishPacket)
	if !ok {
		t.Fatalf("got %v, want a PUBLISH", p)
	}
	if p.Qos == 1 {
		ack := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
		ack.MessageID = p.MessageID
		c.write(t, ack)
	}
	return p.TopicName, p.Payload
}

// publishResponse answers a request at QoS 1 and waits for the PUBACK.
func publishResponse(t testing.TB, c *rawConn, status int, rid, body string) {
	t.Helper()
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.TopicName = fmt.Sprintf("$iothub/methods/res/%d/?$rid=%s", status, rid)
	p.Qos, p.MessageID, p.Payload = 1, 7, []byte(body)
	c.write(t, p)
	if ack, ok := c.read(t).(*packets.PubackPacket); !ok || ack.MessageID != 7 {
		t.Fatalf("got %v, want PUBACK 7", ack)
	}
}

// pingPong checks that the connection still answers PINGREQ.
func pingPong(t testing.TB, c *rawConn) {
	t.Helper()
	c.write(t, packets.NewControlPacket(packets.Pingreq))
	if p, ok := c.read(t).(*packets.PingrespPacket); !ok {
		t.Fatalf("got %v, want PINGRESP", p)
	}
}

// connackCode reads the CONNACK's return code.
func connackCode(t testing.TB, c *rawConn) byte {
	t.Helper()
	ack, ok := c.read(t).(*packets.ConnackPacket)
	if !ok {
		t.Fatalf("got %v, want CONNACK", ack)
	}
	return ack.ReturnCode
}

// dialWebSocket opens /$iothub/websocket offering one subprotocol, checks
// the one the hub chose, and returns the byte stream.
func dialWebSocket(t testing.TB, h *Hub, subprotocol, wantChosen string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "wss://localhost:"+strconv.Itoa(h.HTTPSPort())+"/$iothub/websocket", &websocket.DialOptions{
		HTTPClient:   h.ServiceClient().client,
		Subprotocols: []string{subprotocol},
	})
	if err != nil {
		t.Fatalf("websocket dial: %v", err)
	}
	if c.Subprotocol() != wantChosen {
		t.Errorf("subprotocol = %q, want %q", c.Subprotocol(), wantChosen)
	}
	conn := websocket.NetConn(context.Background(), c, websocket.MessageBinary)
	t.Cleanup(func() { conn.Close() })
	return conn
}
