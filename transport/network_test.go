package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
)

func TestNetworkValidate(t *testing.T) {
	dial := func(ctx context.Context, address string, tlsConfig *tls.Config, _ *Config) (net.Conn, error) {
		return DialTLS(ctx, address, tlsConfig)
	}
	if err := (&Network{Name: "tls", Dial: dial}).Validate(); err != nil {
		t.Errorf("Validate of a network with Dial = %v", err)
	}
	err := (&Network{Name: "empty"}).Validate()
	if !errors.Is(err, errNoDial) || !strings.Contains(err.Error(), `"empty"`) {
		t.Errorf("Validate of a network without Dial = %v, want errNoDial naming the network", err)
	}
}
