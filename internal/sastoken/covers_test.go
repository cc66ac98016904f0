package sastoken

import "testing"

func TestCovers(t *testing.T) {
	const dev = "myhub.azure-devices.net/devices/dev-01"
	const mod = dev + "/modules/fan-ctl"
	tests := []struct {
		name, resource, target string
		want                   bool
	}{
		{"same device", dev, dev, true},
		{"device covers its module", dev, mod, true},
		{"module does not cover its device", mod, dev, false},
		{"same module", mod, mod, true},
		{"host covers every device", "myhub.azure-devices.net", mod, true},
		{"devices collection covers a device", "myhub.azure-devices.net/devices", dev, true},
		{"not a partial segment", "myhub.azure-devices.net/devices/dev-0", dev, false},
		{"not a longer segment", dev, "myhub.azure-devices.net/devices/dev-01x", false},
		{"other device", dev, "myhub.azure-devices.net/devices/dev-02", false},
		{"other module", mod, dev + "/modules/fan", false},
		{"other hub", dev, "otherhub.azure-devices.net/devices/dev-01", false},
		{"host prefix is not a host", "myhub", dev, false},
		{"host case-insensitive", "MyHub.Azure-Devices.NET/devices/dev-01", dev, true},
		{"host case-insensitive in target", dev, "MYHUB.AZURE-DEVICES.NET/devices/dev-01", true},
		{"device id case-sensitive", "myhub.azure-devices.net/devices/Dev-01", dev, false},
		{"module id case-sensitive", mod, dev + "/modules/Fan-ctl", false},
		{"devices segment case-sensitive", "myhub.azure-devices.net/Devices/dev-01", dev, false},
		{"amqps prefix on resource", "amqps://" + dev, dev, true},
		{"amqps prefix on target", dev, "amqps://" + dev, true},
		{"amqps prefix in upper case", "AMQPS://" + dev, dev, true},
		{"https prefix", "https://" + dev, mod, true},
		{"other scheme is not stripped", "mqtts://" + dev, dev, false},
		{"port on resource host", "myhub.azure-devices.net:5671/devices/dev-01", dev, true},
		{"port on target host", dev, "myhub.azure-devices.net:443/devices/dev-01", true},
		{"amqps with port", "amqps://myhub.azure-devices.net:5671/devices/dev-01", mod, true},
		{"trailing slash on resource", dev + "/", dev, true},
		{"trailing slash on bare host", "myhub.azure-devices.net/", dev, true},
		{"trailing slash on target", dev, dev + "/", true},
		{"trailing slash does not widen", "myhub.azure-devices.net/devices/dev-0/", dev, false},
		{"empty resource", "", dev, false},
		{"empty target", dev, "", false},
		{"both empty", "", "", false},
		{"slash only", "/", dev, false},
		{"empty host with path", "/devices/dev-01", "/devices/dev-01", false},
		{"scheme only", "amqps://", dev, false},
		{"longer resource than target", mod, "myhub.azure-devices.net", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Covers(tt.resource, tt.target); got != tt.want {
				t.Errorf("Covers(%q, %q) = %v, want %v", tt.resource, tt.target, got, tt.want)
			}
		})
	}
}
