package transport

import (
	"crypto/tls"
	"testing"

	"github.com/directmethods/iotdevice/sas"
)

func TestConfigAddressing(t *testing.T) {
	cred, err := sas.NewKeyCredential("MDEyMzQ1Njc4OWFiY2RlZg==", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cfg                       Config
		wantAddr, wantID, wantRes string
		wantServerName            string
	}{
		{Config{HostName: "h.example", DeviceID: "d", Credential: cred}, "h.example:8883", "d", "h.example/devices/d", "h.example"},
		{Config{HostName: "h.example", DeviceID: "d", ModuleID: "m", Port: 9000, Credential: cred}, "h.example:9000", "d/m", "h.example/devices/d/modules/m", "h.example"},
		{Config{HostName: "h.example", GatewayHostName: "edge.local", DeviceID: "d", Credential: cred}, "edge.local:8883", "d", "h.example/devices/d", "edge.local"},
		{Config{HostName: "h.example", GatewayHostName: "::1", DeviceID: "d", Credential: cred}, "[::1]:8883", "d", "h.example/devices/d", "::1"},
	}
	for _, tt := range tests {
		if got := tt.cfg.Address(8883); got != tt.wantAddr {
			t.Errorf("Address = %q, want %q", got, tt.wantAddr)
		}
		if got := tt.cfg.ClientID(); got != tt.wantID {
			t.Errorf("ClientID = %q, want %q", got, tt.wantID)
		}
		if got := tt.cfg.Resource(); got != tt.wantRes {
			t.Errorf("Resource = %q, want %q", got, tt.wantRes)
		}
		tc, err := tt.cfg.ClientTLS()
		if err != nil || tc.ServerName != tt.wantServerName || tc.MinVersion < tls.VersionTLS12 || tc.InsecureSkipVerify {
			t.Errorf("ClientTLS = %+v, %v", tc, err)
		}
	}
	if _, err := (&Config{HostName: "h"}).ClientTLS(); err == nil {
		t.Error("ClientTLS without a credential succeeded")
	}
}
