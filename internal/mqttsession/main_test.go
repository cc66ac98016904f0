package mqttsession

import (
	"testing"

	"github.com/directmethods/iotdevice/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }
