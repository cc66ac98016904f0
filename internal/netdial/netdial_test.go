package netdial

import (
	"errors"
	"strings"
	"testing"

	"github.com/directmethods/iotdevice/transport"
)

func TestCheck(t *testing.T) {
	if err := Check(&transport.Network{Name: "tls", Dial: TLSNetwork(0).Dial}); err != nil {
		t.Errorf("Check of a network that dials = %v", err)
	}
	err := Check(&transport.Network{Name: "empty"})
	if !errors.Is(err, ErrNoDial) || !strings.Contains(err.Error(), `"empty"`) {
		t.Errorf("Check of a network without Dial = %v, want ErrNoDial naming the network", err)
	}
}
