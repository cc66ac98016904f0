package localhub

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/google/go-cmp/cmp"
)

func TestParseDigitalTwinPath(t *testing.T) {
	tests := []struct {
		path string
		want digitalTwinPath
		ok   bool
	}{
		{"/digitaltwins/dev", digitalTwinPath{deviceID: "dev"}, true},
		{"/digitaltwins/dev/", digitalTwinPath{deviceID: "dev"}, true},
		{"/digitaltwins/dev/commands/reboot", digitalTwinPath{deviceID: "dev", command: "reboot"}, true},
		{"/digitaltwins/dev/components/thermostat1/commands/getMaxMinReport",
			digitalTwinPath{deviceID: "dev", component: "thermostat1", command: "getMaxMinReport"}, true},
		{"/digitaltwins/d%2Bv/components/c%31/commands/x%2Ay", digitalTwinPath{deviceID: "d+v", component: "c1", command: "x*y"}, true},
		{"/digitaltwins", digitalTwinPath{}, false},
		{"/digitaltwins/", digitalTwinPath{}, false},
		{"/digitaltwins//commands/x", digitalTwinPath{}, false},
		{"/digitaltwins/dev/commands", digitalTwinPath{}, false},
		{"/digitaltwins/dev/commands/", digitalTwinPath{}, false},
		{"/digitaltwins/dev/components/c/commands/", digitalTwinPath{}, false},
		{"/digitaltwins/dev/components//commands/x", digitalTwinPath{}, false},
		{"/digitaltwins/dev/components/c", digitalTwinPath{}, false},
		{"/digitaltwins/dev/commands/x/y", digitalTwinPath{}, false},
		{"/digitaltwins/%zz", digitalTwinPath{}, false},
		{"/twins/dev", digitalTwinPath{}, false},
	}
	for _, tt := range tests {
		got, ok := parseDigitalTwinPath(tt.path)
		if ok != tt.ok || got != tt.want {
			t.Errorf("parseDigitalTwinPath(%q) = %+v, %v; want %+v, %v", tt.path, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzParseDigitalTwinPath(f *testing.F) {
	for _, s := range []string{"/digitaltwins/dev", "/digitaltwins/dev/commands/reboot", "/digitaltwins/d/components/c/commands/x",
		"/digitaltwins//commands/x", "/digitaltwins/dev/components//commands/x", "/digitaltwins/%zz/", "/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, ok := parseDigitalTwinPath(s)
		if !ok {
			return
		}
		if p.deviceID == "" || (p.component != "" && p.command == "") {
			t.Fatalf("parseDigitalTwinPath(%q) = %+v: a missing part", s, p)
		}
		if !strings.HasPrefix(s, "/digitaltwins/") {
			t.Fatalf("parseDigitalTwinPath(%q) accepted a path outside /digitaltwins", s)
		}
		if p.component == "" && p.command != "" && p.methodName() != p.command {
			t.Fatalf("default component's method %q, want %q", p.methodName(), p.command)
		}
	})
}

func TestParseTwinPath(t *testing.T) {
	tests := []struct {
		path           string
		device, module string
		ok             bool
	}{
		{"/twins/dev", "dev", "", true},
		{"/twins/dev/", "dev", "", true},
		{"/twins/dev/modules/mod", "dev", "mod", true},
		{"/twins/d%2Bv/modules/m%2F1", "d+v", "m/1", true},
		{"/twins/dev/methods", "", "", false},
		{"/twins/dev/modules/mod/methods", "", "", false},
		{"/twins/dev/modules", "", "", false},
		{"/twins/dev/modules/", "", "", false},
		{"/twins/", "", "", false},
		{"/twins/%zz", "", "", false},
	}
	for _, tt := range tests {
		device, module, ok := parseTwinPath(tt.path)
		if ok != tt.ok || device != tt.device || module != tt.module {
			t.Errorf("parseTwinPath(%q) = %q, %q, %v; want %q, %q, %v", tt.path, device, module, ok, tt.device, tt.module, tt.ok)
		}
	}
}

func TestParseUsernameModelID(t *testing.T) {
	u, err := parseUsername("hub/dev/?api-version=2021-04-12&model-id=dtmi%3Acom%3Aexample%3ATemperatureController%3B2&DeviceClientType=x")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := u.query[mqttModelIDParameter], "dtmi:com:example:TemperatureController;2"; got != want {
		t.Errorf("model-id = %q, want %q", got, want)
	}
}

// commandDevice answers every request with 200 and {"method": name,
// "payload": payload}, or with the status a "status" method asks for.
func commandDevice(name string, payload []byte) (int, []byte, bool) {
	if name == "status" {
		return 418, []byte(`{"teapot":true}`), true
	}
	if name == "empty" {
		return 204, nil, true
	}
	if len(payload) == 0 {
		payload = []byte("null")
	}
	b, _ := json.Marshal(map[string]json.RawMessage{"method": json.RawMessage(`"` + name + `"`), "payload": payload})
	return 200, b, true
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestDigitalTwinCommands(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev"}})
	connectDevice(t, h, "dev", deviceOptions{answer: commandDevice})
	svc := h.ServiceClient()
	ctx, cancel := context.WithTimeout(t.Context(), 2*waitTimeout)
	defer cancel()
	tests := []struct {
		name               string
		component, command string
		payload            string
		want               CommandResult
	}{
		{"root command", "", "reboot", `5`, CommandResult{Status: 200, Payload: json.RawMessage(`{"method":"reboot","payload":5}`)}},
		{"component command", "thermostat1", "getMaxMinReport", `"2026-11-30T10:00:00Z"`,
			CommandResult{Status: 200, Payload: json.RawMessage(`{"method":"thermostat1*getMaxMinReport","payload":"2026-11-30T10:00:00Z"}`)}},
		{"no payload", "thermostat2", "getMaxMinReport", ``,
			CommandResult{Status: 200, Payload: json.RawMessage(`{"method":"thermostat2*getMaxMinReport","payload":null}`)}},
		{"device's status", "", "status", `{}`, CommandResult{Status: 418, Payload: json.RawMessage(`{"teapot":true}`)}},
		{"no answer body", "", "empty", ``, CommandResult{Status: 204, Payload: json.RawMessage(`null`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var payload json.RawMessage
			if tt.payload != "" {
				payload = json.RawMessage(tt.payload)
			}
			got, err := svc.InvokeCommand(ctx, "dev", tt.component, tt.command, payload, CommandOptions{ResponseTimeoutInSeconds: 10})
			if err != nil {
				t.Fatal(err)
			}
			if !uuidPattern.MatchString(got.RequestID) {
				t.Errorf("x-ms-request-id = %q, want a UUID", got.RequestID)
			}
			got.RequestID = ""
			if diff := cmp.Diff(tt.want, *got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestDigitalTwinCommandErrors(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev", "idle"}})
	connectDevice(t, h, "idle", deviceOptions{noSubscribe: true})
	good := h.ServiceClient().Token(time.Hour)
	const path = "/digitaltwins/dev/components/thermostat1/commands/getMaxMinReport?api-version=2020-09-30"
	unauthorized := restAnswer{401, "IotHubUnauthorizedAccess", 401002, "Unauthorized", map[string]string{}}
	invalid := restAnswer{400, "ArgumentInvalid", 400004, "", map[string]string{}}
	badVersion := restAnswer{400, "InvalidProtocolVersion", 400001, "", map[string]string{}}
	offline := restAnswer{404, "DeviceNotOnline", 404103, "Timed out waiting for device to connect.", map[string]string{"timeout": "00:00:00"}}
	notFound := restAnswer{404, "DeviceNotFound", 404001, "", map[string]string{}}
	tests := []struct {
		name, method, path, auth, body string
		want                           restAnswer
	}{
		{"missing token", http.MethodPost, path, "", `1`, unauthorized},
		{"not a token", http.MethodPost, path, "Bearer x", `1`, unauthorized},
		{"missing api-version", http.MethodPost, "/digitaltwins/dev/commands/reboot", good, `1`, badVersion},
		{"methods-only api-version", http.MethodPost, "/digitaltwins/dev/commands/reboot?api-version=2018-06-30", good, `1`, badVersion},
		{"2021-04-12 accepted", http.MethodPost, "/digitaltwins/nobody/commands/reboot?api-version=2021-04-12", good, `1`, notFound},
		{"unknown device", http.MethodPost, "/digitaltwins/nobody/commands/reboot?api-version=2020-09-30", good, `1`, notFound},
		{"device offline", http.MethodPost, path, good, `1`, offline},
		{"connected, not subscribed", http.MethodPost, "/digitaltwins/idle/commands/reboot?api-version=2020-09-30", good, ``, offline},
		{"payload not JSON", http.MethodPost, path, good, `{not json`, invalid},
		{"payload over 128 KB", http.MethodPost, path, good, `"` + strings.Repeat("x", maxMethodPayload) + `"`,
			restAnswer{413, "MessageTooLarge", 413001, "", map[string]string{}}},
		{"response timeout too small", http.MethodPost, path + "&responseTimeoutInSeconds=4", good, `1`, invalid},
		{"response timeout not a number", http.MethodPost, path + "&responseTimeoutInSeconds=5s", good, `1`, invalid},
		{"connect timeout too large", http.MethodPost, path + "&connectTimeoutInSeconds=301", good, `1`, invalid},
		{"connect timeout twice", http.MethodPost, path + "&connectTimeoutInSeconds=1&connectTimeoutInSeconds=2", good, `1`, invalid},
		{"star in the component", http.MethodPost, "/digitaltwins/dev/components/a%2Ab/commands/c?api-version=2020-09-30", good, `1`, invalid},
		{"invalid command name", http.MethodPost, "/digitaltwins/dev/commands/a%24b?api-version=2020-09-30", good, `1`, invalid},
		{"GET on a command", http.MethodGet, path, good, ``,
			restAnswer{405, "InvalidOperation", 400003, "The requested resource does not support http method 'GET'.", map[string]string{}}},
		{"POST on the digital twin", http.MethodPost, "/digitaltwins/dev?api-version=2020-09-30", good, `1`,
			restAnswer{405, "InvalidOperation", 400003, "The requested resource does not support http method 'POST'.", map[string]string{}}},
		{"POST on a twin", http.MethodPost, "/twins/dev?api-version=2021-04-12", good, `1`,
			restAnswer{405, "InvalidOperation", 400003, "The requested resource does not support http method 'POST'.", map[string]string{}}},
		{"unknown twin", http.MethodGet, "/twins/nobody?api-version=2021-04-12", good, ``, notFound},
		{"unknown module twin", http.MethodGet, "/twins/dev/modules/nomod?api-version=2021-04-12", good, ``,
			restAnswer{404, "ModuleNotFound", 404010, "", map[string]string{}}},
		{"twin without token", http.MethodGet, "/twins/dev?api-version=2021-04-12", "", ``, unauthorized},
		{"digital twin without api-version", http.MethodGet, "/digitaltwins/dev", good, ``, badVersion},
	}
	ignoreMessage := cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Message" }, cmp.Ignore())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, _ := requestRaw(t, h, tt.method, tt.path, tt.auth, tt.body)
			var opts []cmp.Option
			if tt.want.Message == "" {
				opts = append(opts, ignoreMessage)
			}
			if diff := cmp.Diff(tt.want, got, opts...); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTwinRecordsModelID connects with a model ID in the MQTT username and
// reads it back from the twin and the digital twin, with the connection
// state before, during and after the connection.
func TestTwinRecordsModelID(t *testing.T) {
	const model = "dtmi:com:example:TemperatureController;2"
	h := startHub(t, Options{Devices: []string{"dev", "dev/mod"}})
	svc := h.ServiceClient()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()

	before, err := svc.GetTwin(ctx, "dev", "")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Twin{DeviceID: "dev", Status: "enabled", ConnectionState: "Disconnected", LastActivityTime: dotnetZeroTime, Version: 1, ETag: "AAAAAAAAAAE=", Tags: map[string]any{}}, *before); diff != "" {
		t.Errorf("twin before any connection (-want +got):\n%s", diff)
	}

	cs, _ := h.ConnectionString("dev")
	c := dialRaw(t, h, nil)
	p := connectPacket(h.HostName(), "dev", deviceToken(t, cs, time.Now().Add(time.Hour)), true)
	p.Username = h.HostName() + "/dev/?api-version=2021-04-12&model-id=" + strings.NewReplacer(":", "%3A", ";", "%3B").Replace(model) + "&DeviceClientType=test"
	connected := time.Now()
	c.write(t, p)
	if ack, ok := c.read(t).(*packets.ConnackPacket); !ok || ack.ReturnCode != 0 {
		t.Fatalf("CONNACK = %v, want accepted", ack)
	}

	twin, err := svc.GetTwin(ctx, "dev", "")
	if err != nil {
		t.Fatal(err)
	}
	if twin.ModelID != model || twin.ConnectionState != "Connected" {
		t.Errorf("twin while connected: modelId %q, connectionState %q; want %q, Connected", twin.ModelID, twin.ConnectionState, model)
	}
	if at, err := time.Parse(time.RFC3339Nano, twin.LastActivityTime); err != nil || at.Before(connected.Add(-time.Second)) {
		t.Errorf("lastActivityTime = %q (%v), want the connection's time", twin.LastActivityTime, err)
	}
	dt, err := svc.GetDigitalTwin(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	if dt.ID != "dev" || dt.Metadata.Model != model {
		t.Errorf("digital twin = %+v, want $dtId dev and $model %s", dt, model)
	}
	module, err := svc.GetTwin(ctx, "dev", "mod")
	if err != nil {
		t.Fatal(err)
	}
	if module.DeviceID != "dev" || module.ModuleID != "mod" || module.ModelID != "" {
		t.Errorf("module twin = %+v, want dev/mod without a model", module)
	}

	subscribe(t, c, 0) // so that WaitOffline sees the connection go
	c.conn.Close()
	if err := h.WaitOffline(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	after, err := svc.GetTwin(ctx, "dev", "")
	if err != nil {
		t.Fatal(err)
	}
	if after.ConnectionState != "Disconnected" || after.ModelID != model {
		t.Errorf("twin after the connection: %+v, want Disconnected with the model kept", after)
	}
	var se *ServiceError
	if _, err := svc.GetDigitalTwin(ctx, "nobody"); !errors.As(err, &se) || se.ErrorCode != 404001 {
		t.Errorf("GetDigitalTwin(nobody) = %v, want 404001", err)
	}
}
