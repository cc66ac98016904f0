package sas

import "testing"

func TestResource(t *testing.T) {
	tests := []struct {
		host, device, module, want string
	}{
		{"myhub.azure-devices.net", "dev-01", "", "myhub.azure-devices.net/devices/dev-01"},
		{"myhub.azure-devices.net", "dev-01", "fan-ctl", "myhub.azure-devices.net/devices/dev-01/modules/fan-ctl"},
		{"h", "a+b%2F", "m#1", "h/devices/a+b%2F/modules/m#1"},
	}
	for _, tt := range tests {
		if got := Resource(tt.host, tt.device, tt.module); got != tt.want {
			t.Errorf("Resource(%q, %q, %q) = %q, want %q", tt.host, tt.device, tt.module, got, tt.want)
		}
	}
}
