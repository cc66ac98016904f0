package bench

import (
	"context"
	"os"
	"testing"

	"github.com/directmethods/iotdevice/internal/leakcheck"
)

func TestMain(m *testing.M) {
	// Main runs the devices under test in a child process of its own
	// executable, which in these tests is the test binary.
	if len(os.Args) == 2 && os.Args[1] == "-child-devices" {
		os.Exit(Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	leakcheck.Main(m)
}
