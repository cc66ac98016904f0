package mqttwire

import (
	"net/url"
	"strings"
	"testing"

	"github.com/directmethods/iotdevice/transport"
)

func TestUsername(t *testing.T) {
	tests := []struct {
		name string
		cfg  transport.Config
		want string
	}{
		{"device", transport.Config{HostName: "h.azure-devices.net", DeviceID: "d"},
			"h.azure-devices.net/d/?api-version=2021-04-12"},
		{"module", transport.Config{HostName: "h.azure-devices.net", DeviceID: "d", ModuleID: "m"},
			"h.azure-devices.net/d/m/?api-version=2021-04-12"},
		{"user agent escaped", transport.Config{HostName: "h", DeviceID: "d", UserAgent: "sdk/1.0 (go1.25; linux/amd64) & more"},
			"h/d/?api-version=2021-04-12&DeviceClientType=sdk%2F1.0+%28go1.25%3B+linux%2Famd64%29+%26+more"},
		{"model id escaped, before the client type", transport.Config{HostName: "h", DeviceID: "d", ModelID: "dtmi:com:example:TemperatureController;2", UserAgent: "sdk/1"},
			"h/d/?api-version=2021-04-12&model-id=dtmi%3Acom%3Aexample%3ATemperatureController%3B2&DeviceClientType=sdk%2F1"},
		{"module with model id", transport.Config{HostName: "h", DeviceID: "d", ModuleID: "m", ModelID: "dtmi:a;1"},
			"h/d/m/?api-version=2021-04-12&model-id=dtmi%3Aa%3B1"},
		{"gateway does not appear", transport.Config{HostName: "hub", GatewayHostName: "edge", DeviceID: "d", ModuleID: "m"},
			"hub/d/m/?api-version=2021-04-12"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Username(&tt.cfg); got != tt.want {
				t.Errorf("Username = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzUsername(f *testing.F) {
	f.Add("h.azure-devices.net", "device-1", "", "", "")
	f.Add("h", "d", "m", "sdk/1.0 (go; linux)", "dtmi:com:example:Thermostat;1")
	f.Add("h", "d", "", "a&b=c?d#e%", "&model-id=x")
	f.Fuzz(func(t *testing.T, host, device, module, userAgent, modelID string) {
		cfg := &transport.Config{HostName: host, DeviceID: device, ModuleID: module, UserAgent: userAgent, ModelID: modelID}
		u := Username(cfg)
		prefix := host + "/" + cfg.ClientID() + "/?"
		query, ok := strings.CutPrefix(u, prefix)
		if !ok {
			t.Fatalf("Username = %q, want prefix %q", u, prefix)
		}
		values, err := url.ParseQuery(query)
		if err != nil {
			t.Fatalf("query %q does not parse: %v", query, err)
		}
		if got := values.Get("api-version"); got != apiVersion {
			t.Errorf("api-version = %q", got)
		}
		if _, has := values["model-id"]; has != (modelID != "") {
			t.Errorf("model-id present = %v with model id %q", has, modelID)
		}
		if modelID != "" && values.Get("model-id") != modelID {
			t.Errorf("model-id decodes to %q, want %q", values.Get("model-id"), modelID)
		}
		if modelID != "" && userAgent != "" && strings.Index(query, "&model-id=") > strings.Index(query, "&DeviceClientType=") {
			t.Errorf("model-id comes after DeviceClientType in %q", query)
		}
		if _, has := values["DeviceClientType"]; has != (userAgent != "") {
			t.Errorf("DeviceClientType present = %v with user agent %q", has, userAgent)
		}
		if userAgent != "" && values.Get("DeviceClientType") != userAgent {
			t.Errorf("DeviceClientType decodes to %q, want %q", values.Get("DeviceClientType"), userAgent)
		}
	})
}
