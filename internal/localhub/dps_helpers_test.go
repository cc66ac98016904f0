package localhub

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/directmethods/iotdevice/internal/mqttsession"
	"github.com/directmethods/iotdevice/internal/mqttwire"
	"github.com/directmethods/iotdevice/sas"
)

// dpsTransports are the ways a device reaches DPS.
var dpsTransports = []string{"mqtt", "mqtt-ws", "https"}

// startDPSHub starts a hub whose DPS answers with a retry-after of one
// second, the least the wire carries.
func startDPSHub(t testing.TB, opts Options) *Hub {
	t.Helper()
	if opts.DPS.RetryAfter == 0 {
		opts.DPS.RetryAfter = time.Second
	}
	return startHub(t, opts)
}

// dpsToken signs a device's token to DPS with a base64 key.
func dpsToken(t testing.TB, idScope, registrationID, key string, expiry time.Time) string {
	t.Helper()
	k, err := sas.DecodeKey(key)
	if err != nil {
		t.Fatalf("DecodeKey: %v", err)
	}
	return sas.Sign(k, sas.ProvisioningResource(idScope, registrationID), sas.ProvisioningKeyName, expiry)
}

// groupDeviceKey derives a group member's key.
func groupDeviceKey(t testing.TB, groupKey, registrationID string) string {
	t.Helper()
	k, err := sas.DeriveDeviceKey(groupKey, registrationID)
	if err != nil {
		t.Fatalf("DeriveDeviceKey: %v", err)
	}
	return k
}

// dpsDevice is a device's side of DPS for tests, over one transport.
type dpsDevice struct {
	hub            *Hub
	transport      string
	idScope        string
	registrationID string
	apiVersion     string
	token          string           // "": authenticate by cert
	cert           *tls.Certificate // TLS client certificate, or nil
	mqtt           *dpsMQTT         // MQTT transports, once connected
	http           *http.Client     // https
}

// dpsReply is DPS's answer as a device sees it.
type dpsReply struct {
	status     int
	retryAfter time.Duration
	body       []byte
	op         operationStatusJSON // a 2xx body
	err        dpsErrorBody        // an error body
}

// newDPSDevice returns a device of the hub's DPS over transport.
func newDPSDevice(t testing.TB, h *Hub, transport, registrationID, token string, cert *tls.Certificate) *dpsDevice {
	return &dpsDevice{hub: h, transport: transport, idScope: h.IDScope(), registrationID: registrationID,
		apiVersion: mqttwire.DPSAPIVersion, token: token, cert: cert}
}

// register sends a registration with body.
func (d *dpsDevice) register(t testing.TB, body string) dpsReply {
	t.Helper()
	if d.transport == "https" {
		path := "/" + url.PathEscape(d.idScope) + "/registrations/" + url.PathEscape(d.registrationID) + "/register"
		return d.httpsDo(t, http.MethodPut, path, body)
	}
	return d.mqttRequest(t, func(rid string) string { return mqttwire.DPSRegisterTopic(rid) }, body)
}

// poll asks for an operation's status.
func (d *dpsDevice) poll(t testing.TB, operationID string) dpsReply {
	t.Helper()
	if d.transport == "https" {
		path := "/" + url.PathEscape(d.idScope) + "/registrations/" + url.PathEscape(d.registrationID) + "/operations/" + url.PathEscape(operationID)
		return d.httpsDo(t, http.MethodGet, path, "")
	}
	return d.mqttRequest(t, func(rid string) string { return mqttwire.DPSPollTopic(rid, operationID) }, " ")
}

// provision registers and polls, honouring retry-after, until the
// answer is final, and returns the final answer.
func (d *dpsDevice) provision(t testing.TB, body string) dpsReply {
	t.Helper()
	r := d.register(t, body)
	if r.status != http.StatusAccepted {
		return r
	}
	opID := r.op.OperationID
	for range 10 {
		waitRetryAfter(t, r.retryAfter)
		if r = d.poll(t, opID); r.status != http.StatusAccepted {
			return r
		}
	}
	t.Fatalf("registration of %s still assigning after 10 polls", d.registrationID)
	return r
}

// waitRetryAfter lets d pass, as a device honouring retry-after does.
func waitRetryAfter(t testing.TB, d time.Duration) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-t.Context().Done():
		t.Fatal("test ended while waiting for retry-after")
	}
}

// decodeReply fills a reply's decoded body.
func decodeReply(t testing.TB, r *dpsReply) {
	t.Helper()
	target := any(&r.op)
	if r.status >= 300 {
		target = &r.err
	}
	if err := json.Unmarshal(r.body, target); err != nil {
		t.Fatalf("answer %d %q is not DPS JSON: %v", r.status, r.body, err)
	}
}

func (d *dpsDevice) httpsDo(t testing.TB, method, path, body string) dpsReply {
	t.Helper()
	if d.http == nil {
		cfg := &tls.Config{RootCAs: d.hub.CertPool(), ServerName: d.hub.HostName()}
		if d.cert != nil {
			cfg.Certificates = []tls.Certificate{*d.cert}
		}
		tr := &http.Transport{TLSClientConfig: cfg}
		d.http = &http.Client{Transport: tr, Timeout: waitTimeout}
		t.Cleanup(tr.CloseIdleConnections)
	}
	u := "https://" + d.hub.HTTPSAddr() + path + "?api-version=" + url.QueryEscape(d.apiVersion)
	req, err := http.NewRequestWithContext(t.Context(), method, u, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if d.token != "" {
		req.Header.Set("Authorization", d.token)
	}
	status, header, b := roundTrip(t, d.http, req)
	r := dpsReply{status: status, body: b}
	if ra := header.Get("Retry-After"); ra != "" {
		secs, err := strconv.Atoi(ra)
		if err != nil {
			t.Fatalf("Retry-After %q", ra)
		}
		r.retryAfter = time.Duration(secs) * time.Second
	}
	decodeReply(t, &r)
	return r
}

// roundTrip sends req and returns the answer's status, header and body.
func roundTrip(t testing.TB, client *http.Client, req *http.Request) (int, http.Header, []byte) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// dpsMQTT is an MQTT session with DPS, on the same session code as the
// SDK's clients.
type dpsMQTT struct {
	s       *mqttsession.Session
	answers chan *packets.PublishPacket
	rid     atomic.Int64
}

// dialDPS connects a device to DPS over MQTT or MQTT over WebSockets, with
// the CONNECT connect (nil: the device's usual one), and returns the
// session or the CONNECT's error.
func (d *dpsDevice) dialDPS(t testing.TB, connect *packets.ConnectPacket) (*dpsMQTT, error) {
	t.Helper()
	if connect == nil {
		connect = d.connectPacket()
	}
	cfg := &tls.Config{RootCAs: d.hub.CertPool(), ServerName: d.hub.HostName()}
	if d.cert != nil {
		cfg.Certificates = []tls.Certificate{*d.cert}
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	var nc net.Conn
	if d.transport == "mqtt-ws" {
		tr := &http.Transport{TLSClientConfig: cfg}
		t.Cleanup(tr.CloseIdleConnections)
		ws, _, err := websocket.Dial(ctx, "wss://"+d.hub.HTTPSAddr()+"/$iothub/websocket", &websocket.DialOptions{
			HTTPClient: &http.Client{Transport: tr}, Subprotocols: []string{"mqtt"}})
		if err != nil {
			t.Fatalf("websocket dial: %v", err)
		}
		nc = websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	} else {
		c, err := (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", d.hub.MQTTAddr())
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		nc = c
	}
	br, err := mqttsession.Connect(ctx, nc, connect)
	if err != nil {
		nc.Close()
		return nil, err
	}
	m := &dpsMQTT{answers: make(chan *packets.PublishPacket, 16)}
	m.s = mqttsession.Start(nc, br, mqttsession.Config{
		KeepAlive:   time.Minute,
		PingTimeout: waitTimeout,
		OnPublish: func(p *packets.PublishPacket) bool {
			select {
			case m.answers <- p:
			default:
				t.Errorf("answer %s dropped: the test's queue is full", p.TopicName)
			}
			return true
		},
	})
	t.Cleanup(func() { m.s.Close() })
	return m, nil
}

// connectPacket is the CONNECT the SDKs send.
func (d *dpsDevice) connectPacket() *packets.ConnectPacket {
	c := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	c.ProtocolName, c.ProtocolVersion = "MQTT", 4
	c.ClientIdentifier = d.registrationID
	c.CleanSession = true
	c.UsernameFlag = true
	c.Username = d.idScope + "/registrations/" + d.registrationID + "/api-version=" + d.apiVersion + "&ClientVersion=" + url.QueryEscape("localhub-test/1.0")
	if d.token != "" {
		c.PasswordFlag, c.Password = true, []byte(d.token)
	}
	c.Keepalive = 60
	return c
}

// mqttRequest publishes a request at QoS 1, connecting and subscribing
// first if needed, and waits for its answer.
func (d *dpsDevice) mqttRequest(t testing.TB, topic func(rid string) string, body string) dpsReply {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if d.mqtt == nil {
		m, err := d.dialDPS(t, nil)
		if err != nil {
			t.Fatalf("connect to DPS: %v", err)
		}
		if code, err := m.s.Subscribe(ctx, mqttwire.DPSResponseFilter, 1); err != nil || code != 1 {
			t.Fatalf("subscribe = %d, %v; want QoS 1 granted", code, err)
		}
		d.mqtt = m
	}
	rid := strconv.FormatInt(d.mqtt.rid.Add(1), 10)
	if err := d.mqtt.s.Publish(ctx, topic(rid), 1, []byte(body), nil); err != nil {
		t.Fatalf("publish: %v", err)
	}
	select {
	case p := <-d.mqtt.answers:
		res, err := mqttwire.ParseDPSResponseTopic(p.TopicName)
		if err != nil {
			t.Fatalf("answer topic %q: %v", p.TopicName, err)
		}
		if res.RequestID != rid {
			t.Fatalf("answer to $rid %q, want %q", res.RequestID, rid)
		}
		r := dpsReply{status: res.Status, retryAfter: res.RetryAfter, body: p.Payload}
		decodeReply(t, &r)
		return r
	case <-ctx.Done():
		t.Fatalf("no answer to %s within %v", topic(rid), waitTimeout)
		return dpsReply{}
	}
}

// describe is a short form of a reply, for failures.
func (r dpsReply) String() string {
	return fmt.Sprintf("%d retry-after=%v %s", r.status, r.retryAfter, r.body)
}

// serveOneMethod connects a device to the hub over MQTT with a token
// signed by key (or with cert when key is empty), invokes a method on it
// through the REST API and checks that the device answered.
func serveOneMethod(t testing.TB, h *Hub, deviceID, key string, cert *tls.Certificate) {
	t.Helper()
	c := dialRaw(t, h, cert)
	password := ""
	if key != "" {
		k, err := sas.DecodeKey(key)
		if err != nil {
			t.Fatal(err)
		}
		password = sas.Sign(k, sas.Resource(h.HostName(), deviceID, ""), "", time.Now().Add(time.Hour))
	}
	c.write(t, connectPacket(h.HostName(), deviceID, password, true))
	if code := connackCode(t, c); code != connackAccepted {
		t.Fatalf("the provisioned device %s cannot connect: CONNACK %d", deviceID, code)
	}
	subscribe(t, c, 0)
	done := make(chan *MethodResult, 1)
	go func() { // joined below
		res, err := invoke(t, h, deviceID, MethodCall{MethodName: "ping", ResponseTimeoutInSeconds: 10})
		if err != nil {
			t.Errorf("invoke: %v", err)
		}
		done <- res
	}()
	topic, _ := readRequest(t, c)
	_, rid, ok := parseRequestTopic(topic)
	if !ok {
		t.Fatalf("request topic %q", topic)
	}
	publishResponse(t, c, 200, rid, `{"pong":true}`)
	if res := <-done; res == nil || res.Status != 200 || string(res.Payload) != `{"pong":true}` {
		t.Errorf("invoke result %+v", res)
	}
}
