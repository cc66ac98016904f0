package localhub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/google/go-cmp/cmp"

	"github.com/directmethods/iotdevice/internal/leakcheck"
)

func TestConcurrentInvocations(t *testing.T) {
	const devices, calls = 10, 200
	var ids []string
	for i := range devices {
		ids = append(ids, fmt.Sprintf("dev-%02d", i))
	}
	h := startHub(t, Options{Devices: ids})
	for i, id := range ids {
		connectDevice(t, h, id, deviceOptions{webSocket: i%2 == 1, qos: byte(i % 2), answer: func(name string, payload []byte) (int, []byte, bool) {
			return 200, []byte(fmt.Sprintf(`{"device":%q,"got":%s}`, id, payload)), true
		}})
	}
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for n := range calls {
		id := ids[n%devices]
		wg.Go(func() { // owned by the test: ends when the invocation returns; joined below
			res, err := invoke(t, h, id, MethodCall{MethodName: "m", Payload: json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))})
			if err != nil {
				errs <- fmt.Errorf("call %d to %s: %w", n, id, err)
				return
			}
			want := fmt.Sprintf(`{"device":%q,"got":{"n":%d}}`, id, n)
			if res.Status != 200 || string(res.Payload) != want {
				errs <- fmt.Errorf("call %d to %s: got %d %s, want 200 %s", n, id, res.Status, res.Payload, want)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestCloseEndsEverything closes a hub with connections over both
// transports and a call in flight: the call fails, Close returns, and no
// goroutine of the hub is left.
func TestCloseEndsEverything(t *testing.T) {
	h, err := Start(t.Context(), Options{Devices: []string{"tcp", "ws", "mute"}})
	if err != nil {
		t.Fatal(err)
	}
	connectDevice(t, h, "tcp", deviceOptions{})
	connectDevice(t, h, "ws", deviceOptions{webSocket: true})
	mute := connectRaw(t, h, "mute")
	subscribe(t, mute, 0)
	idle := dialRaw(t, h, nil) // connected, never sends CONNECT
	_ = idle

	done := make(chan error, 1)
	go func() { // owned by the test: ends when the invocation returns
		_, err := invoke(t, h, "mute", MethodCall{MethodName: "m"})
		done <- err
	}()
	readRequest(t, mute) // the call is now waiting for an answer
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := <-done; err == nil {
		t.Error("the pending call succeeded after Close")
	}
	mute.waitClosed(t)
	idle.waitClosed(t)
	var left []string
	for _, s := range leakcheck.Wait(5 * time.Second) {
		if strings.Contains(s, "internal/localhub.(*Hub)") || strings.Contains(s, "internal/localhub.(*mqttSession)") ||
			strings.Contains(s, "net/http.(*conn).serve") {
			left = append(left, s)
		}
	}
	if len(left) > 0 {
		t.Errorf("goroutines left after Close:\n%s", strings.Join(left, "\n\n"))
	}
}

func TestDirPersistence(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hub")
	first, err := Start(t.Context(), Options{Dir: dir, Devices: []string{"dev", "dev/mod"}})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := first.AddX509Device("x509")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, id := range []string{"dev", "dev/mod", "x509"} {
		want[id], _ = first.ConnectionString(id)
	}
	want["service"] = first.ServiceConnectionString()
	caPEM := first.CACertPEM()
	first.Close()

	info, err := os.Stat(filepath.Join(dir, stateFileName))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("%s mode = %v, want 0600", stateFileName, info.Mode().Perm())
	}
	if b, err := os.ReadFile(filepath.Join(dir, caFileName)); err != nil || string(b) != string(caPEM) {
		t.Errorf("%s = %q, %v; want the CA", caFileName, b, err)
	}

	second := startHub(t, Options{Dir: dir, Devices: []string{"dev"}})
	got := map[string]string{}
	for _, id := range []string{"dev", "dev/mod", "x509"} {
		got[id], _ = second.ConnectionString(id)
	}
	got["service"] = second.ServiceConnectionString()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("connection strings after restart (-want +got):\n%s", diff)
	}
	if string(second.CACertPEM()) != string(caPEM) {
		t.Error("the CA changed across the restart")
	}
	// The old key still connects; the old certificate still authenticates.
	c := dialRaw(t, second, nil)
	c.write(t, connectPacket(second.HostName(), "dev/mod", deviceToken(t, want["dev/mod"], time.Now().Add(time.Hour)), true))
	if code := connackCode(t, c); code != 0 {
		t.Errorf("CONNACK with the old module key = %d", code)
	}
	x := dialRaw(t, second, &cert)
	x.write(t, connectPacket(second.HostName(), "x509", "", true))
	if code := connackCode(t, x); code != 0 {
		t.Errorf("CONNACK with the old certificate = %d", code)
	}
	again, err := second.AddX509Device("x509")
	if err != nil || !cmp.Equal(again.Certificate, cert.Certificate) {
		t.Errorf("AddX509Device of an existing device returned another certificate (%v)", err)
	}
}

func TestRegistryErrors(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev"}})
	if _, err := h.AddModule("ghost", "mod"); !errors.Is(err, ErrUnknownIdentity) {
		t.Errorf("AddModule of an unknown device = %v, want ErrUnknownIdentity", err)
	}
	if _, err := h.AddX509Device("dev"); !errors.Is(err, ErrIdentityExists) {
		t.Errorf("AddX509Device of a key device = %v, want ErrIdentityExists", err)
	}
	if _, err := h.AddDevice("bad/id"); err == nil {
		t.Error("AddDevice accepted an id with '/'")
	}
	if _, err := h.ConnectionString("ghost"); !errors.Is(err, ErrUnknownIdentity) {
		t.Errorf("ConnectionString of an unknown identity = %v", err)
	}
	cs1, err := h.AddDevice("dev")
	if err != nil {
		t.Fatal(err)
	}
	cs2, _ := h.ConnectionString("dev")
	if cs1 != cs2 {
		t.Error("AddDevice of an existing device changed its key")
	}
}

func TestStartErrors(t *testing.T) {
	h := startHub(t, Options{})
	_, err := Start(t.Context(), Options{MQTTPort: h.MQTTPort()})
	var le *ListenError
	if !errors.As(err, &le) || le.Listener != "mqtt" {
		t.Errorf("Start on a used MQTT port = %v, want *ListenError for mqtt", err)
	}
	_, err = Start(t.Context(), Options{AMQPPort: h.AMQPPort()})
	if !errors.As(err, &le) || le.Listener != "amqp" {
		t.Errorf("Start on a used AMQP port = %v, want *ListenError for amqp", err)
	}
	_, err = Start(t.Context(), Options{HTTPSPort: h.HTTPSPort()})
	if !errors.As(err, &le) || le.Listener != "https" {
		t.Errorf("Start on a used HTTPS port = %v, want *ListenError for https", err)
	}
	if _, err := Start(t.Context(), Options{Devices: []string{"a b"}}); err == nil {
		t.Error("Start accepted an invalid device id")
	}
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, stateFileName), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(t.Context(), Options{Dir: bad}); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Start with a corrupt state file = %v, want a parse error", err)
	}
}

// TestWebSocketUnknownSubprotocol checks that a WebSocket without the mqtt
// or AMQPWSB10 subprotocol is closed.
func TestWebSocketUnknownSubprotocol(t *testing.T) {
	h := startHub(t, Options{})
	c := dialWebSocket(t, h, "stomp", "")
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("read succeeded on a WebSocket without a supported subprotocol")
	}
}

// TestWebSocketSubprotocol checks the subprotocol match and echo.
func TestWebSocketSubprotocol(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev"}})
	for _, proto := range []string{"mqtt", "MQTT"} {
		t.Run(proto, func(t *testing.T) {
			c := dialWebSocket(t, h, proto, proto)
			cs, _ := h.ConnectionString("dev")
			if err := connectPacket(h.HostName(), "dev", deviceToken(t, cs, time.Now().Add(time.Hour)), true).Write(c); err != nil {
				t.Fatal(err)
			}
			p, err := packets.ReadPacket(c)
			if err != nil {
				t.Fatal(err)
			}
			if ack, ok := p.(*packets.ConnackPacket); !ok || ack.ReturnCode != 0 {
				t.Errorf("CONNACK = %v", p)
			}
		})
	}
}
