package testhub

import (
	"crypto/tls"
	"log/slog"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/internal/localhub"
	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport"
)

// Config returns the transport.Config of the registered identity of hub
// ("device" or "device/module"), reaching it on 127.0.0.1:port with the
// hub's host name for TLS and tokens, a key credential and the test's
// logger at Warn.
func Config(t *testing.T, hub *localhub.Hub, identity string, port int) *transport.Config {
	t.Helper()
	s, err := hub.ConnectionString(identity)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := sas.ParseConnectionString(s)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := cs.Credential(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &transport.Config{
		HostName:        cs.HostName,
		GatewayHostName: "127.0.0.1",
		Port:            port,
		DeviceID:        cs.DeviceID,
		ModuleID:        cs.ModuleID,
		Credential:      cred,
		TLSConfig:       &tls.Config{RootCAs: hub.CertPool(), ServerName: cs.HostName},
		KeepAlive:       30 * time.Second,
		Logger:          slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}
