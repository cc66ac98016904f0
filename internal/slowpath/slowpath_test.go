package slowpath

import (
	"testing"

	"github.com/directmethods/iotdevice/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func TestDialerNames(t *testing.T) {
	for _, name := range []string{"mqtt", "mqtt-ws", "amqp", "amqp-ws"} {
		if d, err := Dialer(name, 16<<10); err != nil || d == nil {
			t.Errorf("Dialer(%q) = %v, %v", name, d, err)
		}
	}
	if _, err := Dialer("carrier-pigeon", 16<<10); err == nil {
		t.Error("Dialer of an unknown transport succeeded")
	}
}
