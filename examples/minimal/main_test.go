package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device/hubtest"
)

// TestEchoThroughLocalHub runs the program against an in-process hub, with
// the connection string from the flag and from the environment, and
// invokes its method through the REST API.
func TestEchoThroughLocalHub(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	hub := hubtest.New(t, nil)
	board1, err := hub.AddDevice("board-1")
	if err != nil {
		t.Fatal(err)
	}
	board2, err := hub.AddDevice("board-2")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, hub.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(hub.Port(hubtest.MQTT))
	for _, tt := range []struct {
		name string
		dev  *hubtest.Identity
		args []string
		env  map[string]string
	}{
		{"flag", board1, []string{"-connection-string", board1.ConnectionString(), "-ca", caFile, "-port", port}, nil},
		{"environment", board2, []string{"-ca", caFile, "-port", port}, map[string]string{envConnectionString: board2.ConnectionString()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- run(runCtx, tt.args, func(k string) string { return tt.env[k] }) }() // joined below
			defer func() {
				stop()
				if err := <-done; err != nil {
					t.Errorf("run: %v", err)
				}
			}()
			if err := tt.dev.WaitConnected(ctx); err != nil {
				t.Fatal(err)
			}
			res, err := tt.dev.Invoke(ctx, "echo", []byte(`{"n":1}`), &hubtest.InvokeOptions{ResponseTimeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != 200 || string(res.Payload) != `{"n":1}` {
				t.Errorf("echo = %d %s, want 200 {\"n\":1}", res.Status, res.Payload)
			}
		})
	}
}

func TestRunRefusesBadSetups(t *testing.T) {
	noEnv := func(string) string { return "" }
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"no connection string", nil},
		{"bad connection string", []string{"-connection-string", "HostName=x"}},
		{"missing CA file", []string{"-connection-string", "HostName=h;DeviceId=d;SharedAccessKey=AAAA", "-ca", filepath.Join(t.TempDir(), "none.pem")}},
		{"unknown flag", []string{"-nope"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := run(t.Context(), tt.args, noEnv); err == nil {
				t.Error("run succeeded")
			}
		})
	}
}
