package provisioning

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/directmethods/iotdevice/internal/idcheck"
)

// Result is a device's assignment: the hub and device ID to connect with,
// and what DPS reported with them. It is JSON, with DPS's own field names,
// so that a device can cache it and skip registering on the next boot
// (see the package doc for when to register again).
type Result struct {
	// AssignedHub is the host name of the hub the device belongs to.
	AssignedHub string `json:"assignedHub"`
	// DeviceID is the device's identity on that hub.
	DeviceID string `json:"deviceId"`
	// RegistrationID is the ID the device registered with.
	RegistrationID string `json:"registrationId,omitempty"`
	// Status is "assigned".
	Status string `json:"status,omitempty"`
	// Substatus says how: "initialAssignment", "deviceDataMigrated",
	// "deviceDataReset" or "reprovisionedToInitialAssignment".
	Substatus string `json:"substatus,omitempty"`
	// CreatedDateTimeUTC and LastUpdatedDateTimeUTC are DPS's timestamps
	// of the registration, as it wrote them.
	CreatedDateTimeUTC     string `json:"createdDateTimeUtc,omitempty"`
	LastUpdatedDateTimeUTC string `json:"lastUpdatedDateTimeUtc,omitempty"`
	// ETag is the registration's version at DPS.
	ETag string `json:"etag,omitempty"`
	// Payload is what a custom allocation returned for the device, if
	// anything.
	Payload json.RawMessage `json:"payload,omitempty"`
}

// errBadResult reports a Result that cannot be connected with.
var errBadResult = errors.New("provisioning: unusable result")

// ParseResult reads a Result cached as JSON and checks that it names a hub
// and a device a client can connect to.
func ParseResult(data []byte) (*Result, error) {
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadResult, err)
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// validate checks the fields a device client needs.
func (r *Result) validate() error {
	if err := idcheck.HostName(r.AssignedHub); err != nil {
		return fmt.Errorf("%w: assignedHub: %w", errBadResult, err)
	}
	if err := idcheck.ID(r.DeviceID); err != nil {
		return fmt.Errorf("%w: deviceId: %w", errBadResult, err)
	}
	if len(r.Payload) > 0 && !json.Valid(r.Payload) {
		return fmt.Errorf("%w: payload is not JSON", errBadResult)
	}
	return nil
}
