package localhub

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/google/go-cmp/cmp"

	"github.com/directmethods/iotdevice/internal/mqttwire"
	"github.com/directmethods/iotdevice/sas"
)

func TestConnectRefused(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev", "dev/mod"}})
	devCS, _ := h.ConnectionString("dev")
	modCS, _ := h.ConnectionString("dev/mod")
	token := deviceToken(t, devCS, time.Now().Add(time.Hour))
	wrongKey := sas.Sign([]byte("not the device key, not at all!!"), "localhost/devices/dev", "", time.Now().Add(time.Hour))
	serviceKey, _ := sas.DecodeKey(h.reg.serviceKey)
	tests := []struct {
		name   string
		modify func(c *packets.ConnectPacket)
		want   byte
	}{
		{"accepted", func(c *packets.ConnectPacket) {}, connackAccepted},
		{"policy token accepted", func(c *packets.ConnectPacket) {
			c.Password = []byte(sas.Sign(serviceKey, "localhost/devices/dev", ServicePolicy, time.Now().Add(time.Hour)))
		}, connackAccepted},
		{"host name in other case accepted", func(c *packets.ConnectPacket) {
			c.Username = "LOCALHOST/dev/?api-version=2021-04-12"
		}, connackAccepted},
		{"username without '?' accepted", func(c *packets.ConnectPacket) {
			c.Username = "localhost/dev/api-version=2020-09-30"
		}, connackAccepted},
		{"username without api-version accepted", func(c *packets.ConnectPacket) { c.Username = "localhost/dev/" }, connackAccepted},
		{"username without query accepted", func(c *packets.ConnectPacket) { c.Username = "localhost/dev" }, connackAccepted},
		{"query without api-version accepted", func(c *packets.ConnectPacket) { c.Username = "localhost/dev/?DeviceClientType=x" }, connackAccepted},
		{"module username without api-version accepted", func(c *packets.ConnectPacket) {
			c.ClientIdentifier, c.Username = "dev/mod", "localhost/dev/mod/"
			c.Password = []byte(deviceToken(t, modCS, time.Now().Add(time.Hour)))
		}, connackAccepted},
		{"module username without query accepted", func(c *packets.ConnectPacket) {
			c.ClientIdentifier, c.Username = "dev/mod", "localhost/dev/mod"
			c.Password = []byte(deviceToken(t, modCS, time.Now().Add(time.Hour)))
		}, connackAccepted},
		{"wrong key", func(c *packets.ConnectPacket) { c.Password = []byte(wrongKey) }, connackNotAuthorized},
		{"expired token", func(c *packets.ConnectPacket) {
			c.Password = []byte(deviceToken(t, devCS, time.Now().Add(-time.Hour)))
		}, connackNotAuthorized},
		{"module token for the device", func(c *packets.ConnectPacket) {
			c.Password = []byte(deviceToken(t, modCS, time.Now().Add(time.Hour)))
		}, connackNotAuthorized},
		{"no password", func(c *packets.ConnectPacket) { c.PasswordFlag, c.Password = false, nil }, connackNotAuthorized},
		{"garbage password", func(c *packets.ConnectPacket) { c.Password = []byte("hello") }, connackNotAuthorized},
		{"unknown device", func(c *packets.ConnectPacket) {
			c.ClientIdentifier, c.Username = "ghost", "localhost/ghost/?api-version=2021-04-12"
		}, connackNotAuthorized},
		{"wrong client id", func(c *packets.ConnectPacket) { c.ClientIdentifier = "other" }, connackBadUsernameOrPassord},
		{"client id of the module", func(c *packets.ConnectPacket) { c.ClientIdentifier = "dev/mod" }, connackBadUsernameOrPassord},
		{"other hub", func(c *packets.ConnectPacket) { c.Username = "otherhub/dev/?api-version=2021-04-12" }, connackBadUsernameOrPassord},
		{"empty api-version", func(c *packets.ConnectPacket) { c.Username = "localhost/dev/?api-version=" }, connackBadUsernameOrPassord},
		{"module segment empty", func(c *packets.ConnectPacket) { c.Username = "localhost/dev//" }, connackBadUsernameOrPassord},
		{"username with a module, client id without", func(c *packets.ConnectPacket) { c.Username = "localhost/dev/mod" }, connackBadUsernameOrPassord},
		{"malformed username", func(c *packets.ConnectPacket) { c.Username = "localhost" }, connackBadUsernameOrPassord},
		{"no username", func(c *packets.ConnectPacket) { c.UsernameFlag, c.Username = false, "" }, connackBadUsernameOrPassord},
		{"protocol level 5", func(c *packets.ConnectPacket) { c.ProtocolVersion = 5 }, connackBadProtocolVersion},
		{"protocol level 3", func(c *packets.ConnectPacket) { c.ProtocolName, c.ProtocolVersion = "MQIsdp", 3 }, connackBadProtocolVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, h, nil)
			p := connectPacket(h.HostName(), "dev", token, true)
			tt.modify(p)
			c.write(t, p)
			if got := connackCode(t, c); got != tt.want {
				t.Fatalf("CONNACK = %d, want %d", got, tt.want)
			}
			if tt.want != connackAccepted {
				c.waitClosed(t)
			}
		})
	}
}

func TestSecondConnectionEvictsFirst(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev"}})
	first := connectDevice(t, h, "dev", deviceOptions{answer: func(string, []byte) (int, []byte, bool) {
		return 200, []byte(`"first"`), true
	}})
	connectDevice(t, h, "dev", deviceOptions{answer: func(string, []byte) (int, []byte, bool) {
		return 200, []byte(`"second"`), true
	}})
	first.waitLost(t)
	got, err := invoke(t, h, "dev", MethodCall{MethodName: "m"})
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	if diff := cmp.Diff(&MethodResult{200, json.RawMessage(`"second"`)}, got); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
}

func TestPersistentSessionKeepsSubscription(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev"}})
	cs, _ := h.ConnectionString("dev")
	connect := func(clean bool) (*rawConn, bool) {
		c := dialRaw(t, h, nil)
		c.write(t, connectPacket(h.HostName(), "dev", deviceToken(t, cs, time.Now().Add(time.Hour)), clean))
		ack, ok := c.read(t).(*packets.ConnackPacket)
		if !ok || ack.ReturnCode != 0 {
			t.Fatalf("CONNACK = %v", ack)
		}
		return c, ack.SessionPresent
	}
	disconnect := func(c *rawConn) {
		c.write(t, packets.NewControlPacket(packets.Disconnect))
		c.waitClosed(t)
	}

	c, present := connect(false)
	if present {
		t.Errorf("first connection: SessionPresent = true")
	}
	subscribe(t, c, 1)
	disconnect(c)

	c, present = connect(false)
	if !present {
		t.Errorf("second persistent connection: SessionPresent = false")
	}
	if err := h.WaitSubscribed(t.Context(), "dev"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { // owned by the test: ends when the invocation returns
		_, err := invoke(t, h, "dev", MethodCall{MethodName: "m"})
		done <- err
	}()
	topic, _ := readRequest(t, c)
	_, rid, _ := parseRequestTopic(topic)
	publishResponse(t, c, 200, rid, `{}`)
	if err := <-done; err != nil {
		t.Fatalf("Invoke over the restored subscription: %v", err)
	}
	disconnect(c)

	// CleanSession=1 discards the stored subscription.
	c, present = connect(true)
	if present {
		t.Errorf("clean connection: SessionPresent = true")
	}
	disconnect(c)
	c, present = connect(false)
	if present {
		t.Errorf("persistent connection after a clean one: SessionPresent = true")
	}
	if _, err := invoke(t, h, "dev", MethodCall{MethodName: "m"}); !isCode(err, 404103) {
		t.Errorf("Invoke after a clean session = %v, want 404103", err)
	}
	_ = c
}

func isCode(err error, code int) bool {
	var se *ServiceError
	return errors.As(err, &se) && se.ErrorCode == code
}

// TestConnectionErrorsCloseOnlyThatConnection writes bad packets on one
// connection while another device keeps working.
func TestConnectionErrorsCloseOnlyThatConnection(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"good", "bad"}})
	connectDevice(t, h, "good", deviceOptions{})
	publish := func(topic string, qos byte, payload []byte) []byte {
		p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		p.TopicName, p.Qos, p.MessageID, p.Payload = topic, qos, 3, payload
		var b bytes.Buffer
		_ = p.Write(&b)
		return b.Bytes()
	}
	tests := []struct {
		name        string
		beforeLogin bool
		data        []byte
	}{
		{"garbage before CONNECT", true, []byte("GET / HTTP/1.1\r\n\r\n")},
		{"publish before CONNECT", true, publish("a", 0, nil)},
		{"oversized CONNECT", true, []byte{0x10, 0xff, 0xff, 0xff, 0x7f}},
		{"garbage", false, []byte{0xff, 0x00, 0x01, 0x02}},
		{"remaining length over 4 bytes", false, []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"oversized publish", false, []byte{0x30, 0x81, 0x80, 0x10}}, // 262145 bytes announced, none sent
		{"truncated field", false, []byte{0x30, 0x03, 0x00, 0x10, 'a'}},
		{"subscribe with wrong flags", false, []byte{0x80, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00}},
		{"subscribe without topics", false, []byte{0x82, 0x02, 0x00, 0x01}},
		{"publish QoS 2", false, publish(mqttwire.ResponsePrefix+"200/?$rid=1", 2, []byte("{}"))},
		{"response with non-integer status", false, publish(mqttwire.ResponsePrefix+"ok/?$rid=1", 0, []byte("{}"))},
		{"response without rid", false, publish(mqttwire.ResponsePrefix+"200/", 0, []byte("{}"))},
		{"second CONNECT", false, func() []byte {
			var b bytes.Buffer
			_ = connectPacket("localhost", "bad", "x", true).Write(&b)
			return b.Bytes()
		}()},
		{"CONNACK from the client", false, []byte{0x20, 0x02, 0x00, 0x00}},
		{"reserved packet type", false, []byte{0xf0, 0x00}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c *rawConn
			if tt.beforeLogin {
				c = dialRaw(t, h, nil)
			} else {
				c = connectRaw(t, h, "bad")
			}
			if _, err := c.conn.Write(tt.data); err != nil {
				t.Fatalf("write: %v", err)
			}
			c.waitClosed(t)
			if _, err := invoke(t, h, "good", MethodCall{MethodName: "still-there"}); err != nil {
				t.Fatalf("the other device stopped working: %v", err)
			}
		})
	}
}

func TestSessionPackets(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev"}})
	c := connectRaw(t, h, "dev")

	t.Run("subscribe grants", func(t *testing.T) {
		sub := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
		sub.MessageID = 9
		sub.Topics = []string{mqttwire.MethodsFilter, "$iothub/twin/res/#", "devices/dev/messages/devicebound/#", "some/other/#"}
		sub.Qoss = []byte{2, 0, 1, 1}
		c.write(t, sub)
		ack, ok := c.read(t).(*packets.SubackPacket)
		if !ok {
			t.Fatalf("got %v, want SUBACK", ack)
		}
		if diff := cmp.Diff([]byte{1, 0, 1, 0x80}, ack.ReturnCodes); diff != "" {
			t.Errorf("granted (-want +got):\n%s", diff)
		}
		if ack.MessageID != 9 {
			t.Errorf("SUBACK id = %d, want 9", ack.MessageID)
		}
	})
	t.Run("ping", func(t *testing.T) { pingPong(t, c) })
	t.Run("unknown rid ignored", func(t *testing.T) {
		publishResponse(t, c, 200, "ffffffff", `{}`)
		pingPong(t, c)
	})
	t.Run("telemetry ignored", func(t *testing.T) {
		p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		p.TopicName, p.Qos, p.MessageID, p.Payload = "devices/dev/messages/events/", 1, 4, []byte("x")
		c.write(t, p)
		if ack, ok := c.read(t).(*packets.PubackPacket); !ok || ack.MessageID != 4 {
			t.Fatalf("got %v, want PUBACK 4", ack)
		}
	})
	t.Run("unsubscribe", func(t *testing.T) {
		if err := h.WaitSubscribed(t.Context(), "dev"); err != nil {
			t.Fatal(err)
		}
		un := packets.NewControlPacket(packets.Unsubscribe).(*packets.UnsubscribePacket)
		un.MessageID, un.Topics = 10, []string{mqttwire.MethodsFilter}
		c.write(t, un)
		if ack, ok := c.read(t).(*packets.UnsubackPacket); !ok || ack.MessageID != 10 {
			t.Fatalf("got %v, want UNSUBACK 10", ack)
		}
		if _, err := invoke(t, h, "dev", MethodCall{MethodName: "m"}); !isCode(err, 404103) {
			t.Errorf("Invoke after UNSUBSCRIBE = %v, want 404103", err)
		}
	})
}

// slowestConnect returns the longest of n complete connects (TLS, CONNECT,
// CONNACK) of identity: what a connection costs on this machine now.
func slowestConnect(t *testing.T, h *Hub, identity string, n int) time.Duration {
	t.Helper()
	var slowest time.Duration
	for range n {
		start := time.Now()
		c := connectRaw(t, h, identity)
		slowest = max(slowest, time.Since(start))
		c.conn.Close()
	}
	return slowest
}

// TestConnectWaitBounded opens connections that never complete their
// CONNECT: the hub closes each when its connect timeout, counted from the
// accept, ends (a header announcing more bytes than allowed is refused at
// once). Windows come from complete connects measured on another hub
// before and after: the timeout is at least eight of them, so the test's
// own TLS dials fit in it, and the upper bound's margin four of them, and
// at least a quarter of the timeout, which still tells the timeout apart
// from any longer one.
func TestConnectWaitBounded(t *testing.T) {
	t.Parallel()
	probe := startHub(t, Options{Devices: []string{"dev"}})
	before := slowestConnect(t, probe, "dev", 3)
	timeout := max(time.Second, 8*before)
	h := startHub(t, Options{connectTimeout: timeout})
	tests := []struct {
		name   string
		noTLS  bool
		data   []byte
		atOnce bool
	}{
		{"remaining length over the limit", false, []byte{0x10, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x04, 'M', 'Q'}, true},
		{"256 KiB announced, a few bytes sent", false, []byte{0x10, 0x80, 0x80, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T'}, false},
		{"half a header", false, []byte{0x10, 0x80}, false},
		{"nothing after TLS", false, nil, false},
		{"no TLS handshake", true, nil, false},
	}
	type closing struct {
		name                 string
		atOnce               bool
		sinceDial, sinceDone time.Duration // from before the dial and from its end
	}
	var mu sync.Mutex
	var closings []closing
	t.Run("connections", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				start := time.Now() // before the accept
				var conn net.Conn
				if tt.noTLS {
					d := net.Dialer{Timeout: waitTimeout}
					c, err := d.DialContext(t.Context(), "tcp", h.MQTTAddr())
					if err != nil {
						t.Fatalf("dial: %v", err)
					}
					t.Cleanup(func() { c.Close() })
					conn = c
				} else {
					conn = dialRaw(t, h, nil).conn
				}
				dialed := time.Now() // after the accept
				if _, err := conn.Write(tt.data); err != nil {
					t.Fatalf("write: %v", err)
				}
				_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
				if _, err := io.Copy(io.Discard, conn); err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						t.Fatalf("connection still open after %v", time.Since(start))
					}
				}
				closed := time.Now()
				mu.Lock()
				closings = append(closings, closing{tt.name, tt.atOnce, closed.Sub(start), closed.Sub(dialed)})
				mu.Unlock()
			})
		}
	})
	after := slowestConnect(t, probe, "dev", 3)
	margin := max(4*max(before, after), timeout/4)
	t.Logf("slowest connect %v before, %v after: timeout %v, margin %v", before, after, timeout, margin)
	for _, c := range closings {
		t.Logf("%s: closed %v after the dial", c.name, c.sinceDone)
		switch {
		case c.atOnce && c.sinceDone > margin:
			t.Errorf("%s: closed %v after the header, want at once (within %v)", c.name, c.sinceDone, margin)
		case !c.atOnce && c.sinceDial < timeout:
			t.Errorf("%s: closed %v after the dial began, before the connect timeout %v", c.name, c.sinceDial, timeout)
		case !c.atOnce && c.sinceDone > timeout+margin:
			t.Errorf("%s: closed %v after the dial, want at most %v + %v", c.name, c.sinceDone, timeout, margin)
		}
	}
}

// TestReadDeadline checks the hub's keep-alive timeout: 1.5 times the
// client's keep-alive, at most 1767 s, which a keep-alive of 0 gets too;
// an earlier token expiry comes first.
func TestReadDeadline(t *testing.T) {
	const maxTimeout = 1767 * time.Second
	tests := []struct {
		name        string
		keepAlive   time.Duration
		tokenExpiry time.Duration // from now; 0: no expiry (X.509)
		want        time.Duration // from now
	}{
		{"keep-alive 0 gets the maximum", 0, 0, maxTimeout},
		{"1 s", time.Second, 0, 1500 * time.Millisecond},
		{"paho's 30 s", 30 * time.Second, 0, 45 * time.Second},
		{"C SDK's 240 s", 240 * time.Second, 0, 360 * time.Second},
		{"1178 s is at the maximum", 1178 * time.Second, 0, maxTimeout},
		{"1200 s is capped", 1200 * time.Second, 0, maxTimeout},
		{"largest keep-alive is capped", 65535 * time.Second, 0, maxTimeout},
		{"token expires first", 240 * time.Second, 100 * time.Second, 100 * time.Second},
		{"keep-alive comes first", 240 * time.Second, time.Hour, 360 * time.Second},
		{"keep-alive 0 and a token", 0, 600 * time.Second, 600 * time.Second},
		{"keep-alive 0 and a long token", 0, 24 * time.Hour, maxTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now()
			s := &mqttSession{keepAlive: tt.keepAlive}
			if tt.tokenExpiry != 0 {
				s.tokenExpiry = before.Add(tt.tokenExpiry)
			}
			got := s.readDeadline()
			after := time.Now()
			// The deadline is taken between before and after.
			if got.Before(before.Add(tt.want)) || got.After(after.Add(tt.want)) {
				t.Errorf("readDeadline = now%+v, want now%+v", got.Sub(before), tt.want)
			}
		})
	}
}

// TestKeepAliveEnforced connects with a 2 s keep-alive and sends nothing
// more: the hub closes the connection 3 s (1.5 times the keep-alive) after
// the CONNECT. The upper bound's margin is half the keep-alive, which
// tells 1.5 times apart from the twice some brokers use, or four complete
// connects measured before and after, if that is more on this machine now.
func TestKeepAliveEnforced(t *testing.T) {
	t.Parallel()
	const keepAlive = 2 * time.Second
	h := startHub(t, Options{Devices: []string{"dev", "probe"}})
	before := slowestConnect(t, h, "probe", 3)
	cs, _ := h.ConnectionString("dev")
	c := dialRaw(t, h, nil)
	p := connectPacket(h.HostName(), "dev", deviceToken(t, cs, time.Now().Add(time.Hour)), true)
	p.Keepalive = uint16(keepAlive / time.Second)
	sent := time.Now()
	c.write(t, p)
	if code := connackCode(t, c); code != 0 {
		t.Fatalf("CONNACK = %d", code)
	}
	acked := time.Now() // the hub set its deadline before the CONNACK
	c.waitClosed(t)
	closed := time.Now()
	after := slowestConnect(t, h, "probe", 3)
	margin := max(keepAlive/2, 4*max(before, after))
	if d := closed.Sub(sent); d < keepAlive*3/2 {
		t.Errorf("closed %v after the CONNECT, want at least %v", d, keepAlive*3/2)
	}
	if d := closed.Sub(acked); d > keepAlive*3/2+margin {
		t.Errorf("closed %v after the CONNACK, want at most %v + %v", d, keepAlive*3/2, margin)
	}
}

// TestTokenExpiryDropsConnection connects with a token that expires in 2 s.
func TestTokenExpiryDropsConnection(t *testing.T) {
	t.Parallel()
	h := startHub(t, Options{Devices: []string{"dev"}})
	cs, _ := h.ConnectionString("dev")
	c := dialRaw(t, h, nil)
	expiry := time.Now().Add(2 * time.Second)
	c.write(t, connectPacket(h.HostName(), "dev", deviceToken(t, cs, expiry), true))
	if code := connackCode(t, c); code != 0 {
		t.Fatalf("CONNACK = %d", code)
	}
	c.waitClosed(t)
	if now := time.Now(); now.Before(expiry.Truncate(time.Second)) {
		t.Errorf("closed at %v, before the token's expiry %v", now, expiry)
	}
}

func TestDisconnectAndReconnect(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev"}})
	d := connectDevice(t, h, "dev", deviceOptions{})
	if n := h.Disconnect("dev"); n != 1 {
		t.Errorf("Disconnect = %d, want 1", n)
	}
	d.waitLost(t)
	if n := h.Disconnect("dev"); n != 0 {
		t.Errorf("second Disconnect = %d, want 0", n)
	}
	if _, err := invoke(t, h, "dev", MethodCall{MethodName: "m"}); !isCode(err, 404103) {
		t.Errorf("Invoke while disconnected = %v, want 404103", err)
	}
	connectDevice(t, h, "dev", deviceOptions{})
	if err := h.WaitSubscribed(t.Context(), "dev"); err != nil {
		t.Fatal(err)
	}
	if _, err := invoke(t, h, "dev", MethodCall{MethodName: "m"}); err != nil {
		t.Errorf("Invoke after reconnecting: %v", err)
	}
}
