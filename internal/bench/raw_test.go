package bench

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/internal/localhub"
)

func TestParseMethodTopic(t *testing.T) {
	for _, tt := range []struct {
		topic, name, rid string
		ok               bool
	}{
		{"$iothub/methods/POST/echo/?$rid=1", "echo", "1", true},
		{"$iothub/methods/POST/reboot/?$rid=abc&$.x=1", "reboot", "abc", true},
		{"$iothub/methods/POST//?$rid=1", "", "", false},
		{"$iothub/methods/POST/a/b/?$rid=1", "", "", false},
		{"$iothub/methods/POST/echo/?$rid=", "", "", false},
		{"$iothub/methods/POST/echo/?$rid=a/b", "", "", false},
		{"$iothub/methods/POST/echo", "", "", false},
		{"$iothub/twin/res/200/?$rid=1", "", "", false},
		{"", "", "", false},
	} {
		name, rid, ok := parseMethodTopic(tt.topic)
		if name != tt.name || rid != tt.rid || ok != tt.ok {
			t.Errorf("parseMethodTopic(%q) = %q, %q, %v; want %q, %q, %v", tt.topic, name, rid, ok, tt.name, tt.rid, tt.ok)
		}
	}
}

func FuzzParseMethodTopic(f *testing.F) {
	for _, seed := range []string{"$iothub/methods/POST/echo/?$rid=1", "$iothub/methods/POST/x/?$rid=2&a=b", "$iothub/methods/POST/", "/?$rid="} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		name, rid, ok := parseMethodTopic(topic)
		if !ok {
			return
		}
		if name == "" || rid == "" || strings.Contains(name, "/") || strings.Contains(rid, "/") || strings.Contains(rid, "&") {
			t.Errorf("parseMethodTopic(%q) accepted %q, %q", topic, name, rid)
		}
		if !strings.HasPrefix(topic, rawRequestPrefix+name+rawRIDSeparator+rid) {
			t.Errorf("parseMethodTopic(%q) = %q, %q, not what the topic says", topic, name, rid)
		}
	})
}

// startHub starts an in-process hub with devices identities, closed at the
// end of the test.
func startHub(t *testing.T, devices int) *Target {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	hub, target, err := StartLocalHub(ctx, devices)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	return target
}

func TestRawDeviceAnswers(t *testing.T) {
	for _, kind := range []string{KindRaw, KindRawAtLeastOnce} {
		for _, transportName := range []string{"mqtt", "mqtt-ws", "amqp", "amqp-ws"} {
			t.Run(kind+"/"+transportName, func(t *testing.T) { testRawDeviceAnswers(t, kind, transportName) })
		}
	}
}

func TestFloorDeviceAnswers(t *testing.T) {
	for _, kind := range []string{KindFloor, KindFloorAtLeastOnce, KindFloorHandoff, KindFloorHandoffAtLeastOnce} {
		for _, transportName := range []string{"mqtt", "mqtt-ws"} {
			t.Run(kind+"/"+transportName, func(t *testing.T) { testRawDeviceAnswers(t, kind, transportName) })
		}
	}
}

func testRawDeviceAnswers(t *testing.T, kind, transportName string) {
	target := startHub(t, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	d, err := Connect(ctx, kind, transportName, target, target.ConnectionStrings[0])
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	id, _ := target.DeviceID(0)
	for _, tt := range []struct {
		method, payload string
		status          int
		answer          string
	}{
		{EchoMethod, `{"a":[1,2]}`, 200, `{"a":[1,2]}`},
		{EchoMethod, "", 200, "null"},
		{"reboot", `1`, 501, `{"error":"unknown method"}`},
	} {
		call := localhub.MethodCall{MethodName: tt.method, ResponseTimeoutInSeconds: 5}
		if tt.payload != "" {
			call.Payload = []byte(tt.payload)
		}
		res, err := target.Service.Invoke(ctx, id, "", call)
		if err != nil {
			t.Fatalf("%s: %v", tt.method, err)
		}
		if res.Status != tt.status || string(res.Payload) != tt.answer {
			t.Errorf("%s(%s) = %d %s, want %d %s", tt.method, tt.payload, res.Status, res.Payload, tt.status, tt.answer)
		}
	}
}

func TestConnectRejectsUnknownKinds(t *testing.T) {
	target := &Target{ConnectionStrings: []string{"HostName=h;DeviceId=d;SharedAccessKey=AAAA"}}
	for _, tt := range []struct{ kind, transport string }{{"fast", "mqtt"}, {KindRaw, "carrier-pigeon"}, {KindSDK, "carrier-pigeon"}} {
		if _, err := Connect(t.Context(), tt.kind, tt.transport, target, target.ConnectionStrings[0]); err == nil {
			t.Errorf("Connect(%q, %q) succeeded", tt.kind, tt.transport)
		}
	}
	if _, err := Connect(t.Context(), KindRaw, "mqtt", target, "not a connection string"); err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("Connect with a bad connection string: err = %v", err)
	}
}
