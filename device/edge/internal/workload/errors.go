package workload

import (
	"fmt"
	"strconv"
)

// Error is a failed workload API call.
type Error struct {
	// Call is the call that failed: CallSign or CallTrustBundle.
	Call string
	// StatusCode is the HTTP status the runtime answered with; 0 when no
	// answer came (Err says why), 200 for an answer that could not be read.
	StatusCode int
	// Message is the runtime's explanation, if it gave one.
	Message string
	// Err is the underlying error, such as the network's.
	Err error
}

func (e *Error) Error() string {
	s := "workload: " + e.Call
	if e.StatusCode != 0 {
		s += ": HTTP " + strconv.Itoa(e.StatusCode)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil {
		s += fmt.Sprintf(": %v", e.Err)
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Refused reports whether the runtime refused the request itself (a 4xx
// status): the same request cannot succeed later.
func (e *Error) Refused() bool { return e.StatusCode >= 400 && e.StatusCode < 500 }
