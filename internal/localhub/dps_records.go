package localhub

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
)

// registrationStateJSON is a device's registration state as DPS gives it:
// in the final answer to a registration operation, in an individual
// enrollment, and from GET /registrations/{id} (the DPS REST reference's
// DeviceRegistrationState and DeviceRegistrationResult; an answer of DPS,
// Azure/azure-iot-sdk-node issue #721 and Azure/iotedge issue #6697).
type registrationStateJSON struct {
	X509                   *attestationResultJSON `json:"x509,omitempty"`
	SymmetricKey           *attestationResultJSON `json:"symmetricKey,omitempty"`
	RegistrationID         string                 `json:"registrationId"`
	CreatedDateTimeUTC     string                 `json:"createdDateTimeUtc,omitempty"`
	AssignedHub            string                 `json:"assignedHub,omitempty"`
	DeviceID               string                 `json:"deviceId,omitempty"`
	Status                 string                 `json:"status"`
	Substatus              string                 `json:"substatus,omitempty"`
	ErrorCode              int                    `json:"errorCode,omitempty"`
	ErrorMessage           string                 `json:"errorMessage,omitempty"`
	LastUpdatedDateTimeUTC string                 `json:"lastUpdatedDateTimeUtc,omitempty"`
	ETag                   string                 `json:"etag,omitempty"`
	Payload                json.RawMessage        `json:"payload,omitempty"`
}

// attestationResultJSON says, in a registration state, which enrollment
// group attested the device (azure-iot-sdk-csharp,
// SymmetricKeyRegistrationResult and X509RegistrationResult).
type attestationResultJSON struct {
	EnrollmentGroupID string `json:"enrollmentGroupId,omitempty"`
}

// Registration statuses and substatuses (DPS REST reference,
// DeviceRegistrationState; azure-iot-sdk-csharp,
// ProvisioningRegistrationSubstatus.cs).
const (
	statusAssigning = "assigning"
	statusAssigned  = "assigned"
	statusFailed    = "failed"

	substatusInitial = "initialAssignment"
	// substatusReprovisioned is what DPS reports, from api-version
	// 2019-04-15 on, when a device registers again and stays on its hub,
	// or registers for the first time but is in the hub already
	// (azure-iot-sdk-csharp pull request #2397; Azure/iotedge pull
	// request #3834; the azure-iot-cli-extension DPS tests, where a
	// second registration gives it). Earlier api-versions keep reporting
	// initialAssignment (Azure/iotedge issue #3283).
	substatusReprovisioned = "reprovisionedToInitialAssignment"
	reprovisionedSince     = "2019-04-15"
)

// registrationRecord is DPS's record of a device's last registration.
type registrationRecord struct {
	State registrationStateJSON `json:"state"`
	// EnrollmentGroupID is the group that attested the device, empty for
	// an individual enrollment.
	EnrollmentGroupID string `json:"enrollmentGroupId,omitempty"`
	// DevicePayload is the payload the device sent with its
	// registration, kept for the custom allocation webhook.
	DevicePayload json.RawMessage `json:"devicePayload,omitempty"`
}

// operation is a registration operation: the state it reports once ready.
type operation struct {
	ID             string                `json:"id"`
	RegistrationID string                `json:"registrationId"`
	Created        time.Time             `json:"created"`
	ReadyAt        time.Time             `json:"readyAt"` // polls before it are answered "assigning"
	State          registrationStateJSON `json:"state"`
}

// Bounds on the operations DPS remembers. DPS documents neither; an
// operation is polled within seconds of its start.
const (
	operationLifetime = 24 * time.Hour
	maxOperations     = 10000
)

// operationStatusJSON is the answer to a registration and to a poll
// (RegistrationOperationStatus): {"operationId":"…","status":"assigning"}
// first (Azure/azure-iot-sdk-node issue #721), then the final status with
// the registration state. A poll answered 202 carries the registration
// state too, as "assigning": the C# SDK reads its status on every poll
// (azure-iot-sdk-csharp, ProvisioningTransportHandlerMqtt.cs,
// PollUntilProvisionigFinishesAsync).
type operationStatusJSON struct {
	OperationID       string                 `json:"operationId"`
	Status            string                 `json:"status"`
	RegistrationState *registrationStateJSON `json:"registrationState,omitempty"`
}

// newOperationID returns a new operation id: the DPS's prefix and a
// random GUID.
func newOperationID(prefix string) string {
	return prefix + "." + newDPSTrackingID()
}

// newEnrollmentETag returns an etag as DPS writes an enrollment's, a
// quoted GUID-like string: "\"13003fea-0000-0300-0000-62d1d5e50000\""
// (the "Understand custom allocation policies" page).
func newEnrollmentETag() string {
	return `"` + newDPSTrackingID() + `"`
}

// newRegistrationETag returns an etag as DPS writes a registration
// state's: base64 of a quoted GUID-like string
// ("IjZkMDE3ZWM1LTAwMDAtMDcwMC0wMDAwLTYzM2Y1MDcwMDAwMCI=",
// Azure/iotedge issue #6697).
func newRegistrationETag() string {
	return base64.StdEncoding.EncodeToString([]byte(newEnrollmentETag()))
}

// encodeAnswer encodes a DPS answer body; the values are plain data.
func encodeAnswer(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("localhub: encode a DPS answer: %v", err)) // only strings, ints and raw JSON that was valid
	}
	return b
}
