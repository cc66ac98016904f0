package edge

import "github.com/directmethods/iotdevice/device/edge/internal/workload"

// WorkloadError is a failed call to the IoT Edge workload API, found in
// the errors of NewModuleClient and of the client's Run with errors.As:
// the Call that failed, the runtime's StatusCode and its Message.
type WorkloadError = workload.Error

// Calls of the workload API, as WorkloadError.Call names them.
const (
	WorkloadCallSign        = workload.CallSign
	WorkloadCallTrustBundle = workload.CallTrustBundle
)

// ErrInvalidWorkloadURI reports an IOTEDGE_WORKLOADURI that is neither
// unix:///path nor http://host[:port].
var ErrInvalidWorkloadURI = workload.ErrInvalidURI
