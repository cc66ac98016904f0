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
	defaults := portFlags{mqtt: 8883, amqp: 5671, https: 443}
	tests := []struct {
		name  string
		err   error
		ports portFlags
		want  string
	}{
		{"https privileged", &localhub.ListenError{Listener: "https", Addr: "127.0.0.1:443", Err: fmt.Errorf("bind: %w", syscall.EACCES)}, defaults, "Use -https-port 8443 instead"},
		{"mqtt privileged", &localhub.ListenError{Listener: "mqtt", Addr: "127.0.0.1:883", Err: fmt.Errorf("bind: %w", syscall.EACCES)}, portFlags{mqtt: 883, amqp: 5671, https: 443}, "Use -mqtt-port 8883 instead"},
		{"in use", &localhub.ListenError{Listener: "mqtt", Addr: "127.0.0.1:8883", Err: syscall.EADDRINUSE}, defaults, "Choose another with -mqtt-port"},
		{"amqp privileged", &localhub.ListenError{Listener: "amqp", Addr: "127.0.0.1:671", Err: fmt.Errorf("bind: %w", syscall.EACCES)}, portFlags{mqtt: 8883, amqp: 671, https: 443}, "The system refused port 671: ports below 1024 need privileges. Use -amqp-port 8671 instead"},
		{"amqp in use", &localhub.ListenError{Listener: "amqp", Addr: "127.0.0.1:5671", Err: syscall.EADDRINUSE}, defaults, "Port 5671 is not available. Choose another with -amqp-port"},
		{"other", errors.New("boom"), defaults, "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := explain(tt.err, tt.ports)
			if !strings.Contains(got, tt.want) {
				t.Errorf("explain = %q, want it to contain %q", got, tt.want)
			}
		})
	}
}
