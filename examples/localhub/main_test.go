package main

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/directmethods/iotdevice/internal/localhub"
)

func TestSplitList(t *testing.T) {
	got := splitList(" device-1, ,dev/mod,")
	if diff := cmp.Diff([]string{"device-1", "dev/mod"}, got); diff != "" {
		t.Errorf("splitList (-want +got):\n%s", diff)
	}
}

func TestExplain(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		mqttPort int
		want     string
	}{
		{"https privileged", &localhub.ListenError{Listener: "https", Addr: "127.0.0.1:443", Err: fmt.Errorf("bind: %w", syscall.EACCES)}, 8883, "Use -https-port 8443 instead"},
		{"mqtt privileged", &localhub.ListenError{Listener: "mqtt", Addr: "127.0.0.1:883", Err: fmt.Errorf("bind: %w", syscall.EACCES)}, 883, "Use -mqtt-port 8883 instead"},
		{"in use", &localhub.ListenError{Listener: "mqtt", Addr: "127.0.0.1:8883", Err: syscall.EADDRINUSE}, 8883, "Choose another with -mqtt-port"},
		{"other", errors.New("boom"), 8883, "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := explain(tt.err, tt.mqttPort, 443)
			if !strings.Contains(got, tt.want) {
				t.Errorf("explain = %q, want it to contain %q", got, tt.want)
			}
		})
	}
}
