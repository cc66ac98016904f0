//go:build unix

package bench

import (
	"fmt"
	"syscall"
	"time"
)

// processCPU returns the CPU time this process has spent, user and system,
// over all its threads.
func processCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("bench: getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// ChildDevicesSupported reports whether devices can run in a child
// process with their CPU time measured (Config.DeviceCommand).
const ChildDevicesSupported = true
