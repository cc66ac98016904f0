package localhub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// dpsDeviceAPIVersions are the api-versions DPS's device API accepts
// here: the ones the official device SDKs and Microsoft's own clients
// send.
//   - 2019-03-31: the Node.js, Python, C and embedded C SDKs and the
//     "Use MQTT to communicate with DPS" page.
//   - 2019-04-15: IoT Edge (Azure/iotedge pull request #3834).
//   - 2021-06-01: the DPS device REST reference; the C SDK since
//     Azure/azure-iot-sdk-c issue #2575.
//   - 2021-10-01: the DPS data-plane REST reference (Runtime Registration).
//
// Others get 400 with 400004, "Unsupported API version …" (Azure/iotedge
// issue #4112).
var dpsDeviceAPIVersions = []string{"2019-03-31", "2019-04-15", "2021-06-01", "2021-10-01"}

// maxDPSBody bounds the body of a registration and of a service API
// request. DPS documents no limit; an enrollment with two certificates
// and an initial twin is a few KB.
const maxDPSBody = 64 * 1024

// webhookTimeout bounds a custom allocation webhook's answer. DPS
// documents none.
const webhookTimeout = 10 * time.Second

// deviceRequest is a device's request to DPS, whatever carries it.
type deviceRequest struct {
	idScope        string
	registrationID string
	apiVersion     string
	proof          deviceProof
	operationID    string // a poll's
	body           []byte // a registration's, maybe empty
	transport      string // for logs
}

// registrationBody is the JSON of a registration request:
// {"registrationId":"…","payload":{…}} (DPS REST reference, Runtime
// Registration - Register Device). The C# SDK sends no body at all when
// there is no payload (azure-iot-sdk-csharp,
// ProvisioningTransportHandlerMqtt.cs); the Node.js SDK always sends one.
type registrationBody struct {
	RegistrationID *string         `json:"registrationId"`
	Payload        json.RawMessage `json:"payload"`
	TPM            json.RawMessage `json:"tpm"`
}

// decodeRegistrationBody parses a registration's body for registrationID
// and returns the device's payload (nil when none or null).
func decodeRegistrationBody(body []byte, registrationID string) (json.RawMessage, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	var b registrationBody
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, fmt.Errorf("the registration body is not a JSON object: %s", clip(err.Error()))
	}
	if b.RegistrationID != nil && !strings.EqualFold(*b.RegistrationID, registrationID) {
		return nil, fmt.Errorf("the body's registrationId %q is not the one registering, %q", clip(*b.RegistrationID), clip(registrationID))
	}
	if len(b.TPM) > 0 && string(b.TPM) != "null" {
		return nil, errors.New("TPM attestation is not supported by the local hub")
	}
	if string(b.Payload) == "null" {
		return nil, nil
	}
	return b.Payload, nil
}

// checkDeviceRequest checks what every device request must carry: a
// supported api-version and a valid registration id.
func checkDeviceRequest(req deviceRequest) *dpsError {
	if !slices.Contains(dpsDeviceAPIVersions, req.apiVersion) {
		return errDPSAPIVersion(req.apiVersion)
	}
	if err := validateRegistrationID(req.registrationID); err != nil {
		return errDPSBadRequest("The registration id " + err.Error() + ".")
	}
	return nil
}

// register handles a registration request: it attests the device, assigns
// it to the hub (creating or updating its identity, after the custom
// allocation webhook when the enrollment has one) and answers 202 with the
// operation to poll.
func (d *dps) register(ctx context.Context, req deviceRequest, now time.Time) dpsAnswer {
	log := d.log.With("registration_id", clip(req.registrationID), "transport", req.transport)
	if e := checkDeviceRequest(req); e != nil {
		log.Info("dps: registration refused", "status", e.status, "reason", e.message)
		return e.answer(now)
	}
	if ok, wait := d.limit.take(now); !ok {
		log.Warn("dps: registration throttled", "retry_after", wholeSeconds(wait))
		a := errDPSThrottled().answer(now)
		a.retryAfter = wholeSeconds(wait)
		return a
	}
	if len(req.body) > maxDPSBody {
		return errDPSTooLarge().answer(now)
	}
	payload, err := decodeRegistrationBody(req.body, req.registrationID)
	if err != nil {
		log.Info("dps: registration refused", "status", 400, "reason", err)
		return errDPSBadRequest(err.Error()).answer(now)
	}
	att, err := d.attest(req.idScope, req.registrationID, req.proof, now)
	if err != nil {
		log.Warn("dps: registration unauthorized", "reason", err)
		return errDPSUnauthorized().answer(now)
	}
	rec := d.assign(ctx, log, req, att, payload, now)
	op := &operation{ID: newOperationID(d.prefix()), RegistrationID: rec.State.RegistrationID, Created: now, ReadyAt: now.Add(d.retryAfter), State: rec.State}
	d.mu.Lock()
	d.registrations[strings.ToLower(req.registrationID)] = rec
	d.operations[op.ID] = op
	d.pruneOperationsLocked(now)
	d.mu.Unlock()
	d.saveOrLog()
	d.mu.Lock()
	close(d.started)
	d.started = make(chan struct{})
	d.mu.Unlock()
	log.Info("dps: registration accepted", "operation_id", op.ID, "outcome", rec.State.Status, "device_id", rec.State.DeviceID)
	return dpsAnswer{status: 202, body: encodeAnswer(operationStatusJSON{OperationID: op.ID, Status: statusAssigning}), retryAfter: d.retryAfter}
}

// prefix returns the start of operation ids.
func (d *dps) prefix() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.operationPrefix
}

// pruneOperationsLocked forgets operations past their lifetime and, beyond
// maxOperations, the oldest. d.mu is held.
func (d *dps) pruneOperationsLocked(now time.Time) {
	for id, op := range d.operations {
		if now.Sub(op.Created) > operationLifetime {
			delete(d.operations, id)
		}
	}
	for len(d.operations) > maxOperations {
		var oldest *operation
		for _, op := range d.operations {
			if oldest == nil || op.Created.Before(oldest.Created) {
				oldest = op
			}
		}
		delete(d.operations, oldest.ID)
	}
}

// assign assigns an attested device to the hub and returns its new
// registration record: assigned, or failed when the custom allocation
// webhook fails or names another hub.
func (d *dps) assign(ctx context.Context, log *slog.Logger, req deviceRequest, att attestation, payload json.RawMessage, now time.Time) *registrationRecord {
	e := att.enrollment
	d.mu.Lock()
	prev := d.registrations[strings.ToLower(req.registrationID)]
	d.mu.Unlock()

	rec := &registrationRecord{DevicePayload: payload}
	st := &rec.State
	st.RegistrationID = req.registrationID
	st.CreatedDateTimeUTC = formatDPSTime(now)
	st.LastUpdatedDateTimeUTC = st.CreatedDateTimeUTC
	st.ETag = newRegistrationETag()
	result := &attestationResultJSON{}
	if e.group {
		rec.EnrollmentGroupID = e.id()
		result.EnrollmentGroupID = e.id()
	}
	if e.symmetricKey() {
		st.SymmetricKey = result
	} else {
		st.X509 = result
	}
	deviceID := req.registrationID
	if !e.group {
		deviceID = e.deviceID()
	}
	reassigned := prev != nil && prev.State.Status == statusAssigned && strings.EqualFold(prev.State.AssignedHub, d.hostName)
	if reassigned {
		st.CreatedDateTimeUTC = prev.State.CreatedDateTimeUTC
		if e.group {
			deviceID = prev.State.DeviceID // the registration id's spelling when it first registered
		}
	}

	if e.doc.AllocationPolicy == allocationCustom {
		wctx, cancel := context.WithTimeout(ctx, webhookTimeout)
		returned, err := d.callWebhook(wctx, e, req.registrationID, prev, payload)
		cancel()
		if err != nil {
			// The device learns that the webhook failed, not how: the
			// reason may name the webhook's address.
			log.Warn("dps: custom allocation failed", "err", err)
			st.Status, st.ErrorCode, st.ErrorMessage = statusFailed, errCustomAllocationFailed, "The custom allocation webhook failed."
			return rec
		}
		st.Payload = returned
	}
	_, inHub := d.reg.lookup(deviceID)
	if _, err := d.reg.provision(deviceID, att.credential); err != nil {
		log.Error("dps: creating the device in the hub failed", "err", err)
		st.Status, st.ErrorCode, st.ErrorMessage = statusFailed, errDeviceCreationFailed, "The device could not be created in the IoT hub."
		return rec
	}
	st.Status, st.AssignedHub, st.DeviceID = statusAssigned, d.hostName, deviceID
	st.Substatus = substatusInitial
	if (reassigned || inHub) && req.apiVersion >= reprovisionedSince {
		st.Substatus = substatusReprovisioned
	}
	return rec
}

// Error codes of failed registrations, in their registration state. DPS
// documents neither (UNCONFIRMED).
const (
	errCustomAllocationFailed = 400209
	errDeviceCreationFailed   = 500000
)

// poll answers a registration operation's status: 202 "assigning" until
// the assignment is ready, then 200 with the registration state. The
// device must attest itself as for its registration.
func (d *dps) poll(req deviceRequest, now time.Time) dpsAnswer {
	log := d.log.With("registration_id", clip(req.registrationID), "transport", req.transport)
	if e := checkDeviceRequest(req); e != nil {
		return e.answer(now)
	}
	if _, err := d.attest(req.idScope, req.registrationID, req.proof, now); err != nil {
		log.Warn("dps: operation status unauthorized", "reason", err)
		return errDPSUnauthorized().answer(now)
	}
	d.mu.Lock()
	op := d.operations[req.operationID]
	d.mu.Unlock()
	if op == nil || !strings.EqualFold(op.RegistrationID, req.registrationID) {
		log.Info("dps: unknown operation", "operation_id", clip(req.operationID))
		return errDPSNotFound("Operation not found.").answer(now)
	}
	if now.Before(op.ReadyAt) {
		return dpsAnswer{status: 202, retryAfter: d.retryAfter, body: encodeAnswer(operationStatusJSON{
			OperationID: op.ID, Status: statusAssigning,
			RegistrationState: &registrationStateJSON{RegistrationID: op.RegistrationID, Status: statusAssigning},
		})}
	}
	state := op.State
	return dpsAnswer{status: 200, body: encodeAnswer(operationStatusJSON{OperationID: op.ID, Status: state.Status, RegistrationState: &state})}
}
