//go:build !unix

package bench

import "time"

// processCPU returns ErrNoDeviceCPU: this platform has no getrusage.
func processCPU() (time.Duration, error) { return 0, ErrNoDeviceCPU }

// ChildDevicesSupported reports whether devices can run in a child
// process with their CPU time measured (Config.DeviceCommand).
const ChildDevicesSupported = false
