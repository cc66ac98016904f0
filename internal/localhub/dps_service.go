package localhub

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/directmethods/iotdevice/internal/sastoken"
	"github.com/directmethods/iotdevice/sas"
)

// dpsServiceAPIVersions are the api-versions the service API accepts: the
// Node.js service SDK's (azure-iot-provisioning-service,
// provisioningserviceclient.ts) and the DPS REST reference's,
// 2021-10-01, and the C service SDK's, 2018-04-01 (its request in
// Azure/azure-iot-sdk-c issue #1844).
var dpsServiceAPIVersions = []string{"2018-04-01", "2021-10-01"}

// authorizeService checks a service API request's Authorization header:
// a SAS token for the DPS host, signed with the key of DPSServicePolicy
// (skn=provisioningserviceowner), not expired. Errors wrap
// ErrUnauthorized.
func (d *dps) authorizeService(token string, now time.Time) error {
	if token == "" {
		return fmt.Errorf("%w: no Authorization header", ErrUnauthorized)
	}
	t, err := sastoken.Parse(token)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	if t.KeyName != DPSServicePolicy {
		return fmt.Errorf("%w: unknown policy %q", ErrUnauthorized, clip(t.KeyName))
	}
	d.mu.Lock()
	encoded := d.serviceKey
	d.mu.Unlock()
	key, err := sas.DecodeKey(encoded)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	if err := t.Verify(key, now); err != nil {
		return fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	if !t.Covers(d.hostName) {
		return fmt.Errorf("%w: %w", ErrUnauthorized, sas.ErrWrongResource)
	}
	return nil
}

// store returns the map of individual enrollments or of groups; d.mu is
// held.
func (d *dps) storeLocked(group bool) map[string]*enrollment {
	if group {
		return d.groups
	}
	return d.enrollments
}

// checkIfMatchLocked applies an If-Match header to the current
// resource's etag (RFC 7232): "*" matches any resource, another value
// only a resource with that etag; nothing matches a missing resource.
func checkIfMatch(ifMatch string, exists bool, etag string) *dpsError {
	if ifMatch == "" {
		return nil
	}
	if !exists || ifMatch != "*" && ifMatch != etag {
		return errDPSPreconditionFailed()
	}
	return nil
}

// putEnrollment creates or replaces an enrollment (group true: an
// enrollment group) from a service API body, and returns it as the API
// gives it back.
func (d *dps) putEnrollment(group bool, id string, body []byte, ifMatch string, now time.Time) (enrollmentDoc, *dpsError) {
	e, err := decodeEnrollment(body, group, id, d.hostName)
	if err != nil {
		return enrollmentDoc{}, errDPSBadRequest(err.Error())
	}
	return d.storeEnrollment(e, ifMatch, now)
}

// storeEnrollment stores a decoded enrollment, giving it its etag and
// times.
func (d *dps) storeEnrollment(e *enrollment, ifMatch string, now time.Time) (enrollmentDoc, *dpsError) {
	key := strings.ToLower(e.id())
	d.mu.Lock()
	m := d.storeLocked(e.group)
	prev := m[key]
	etag := ""
	if prev != nil {
		etag = prev.doc.ETag
	}
	if rerr := checkIfMatch(ifMatch, prev != nil, etag); rerr != nil {
		d.mu.Unlock()
		return enrollmentDoc{}, rerr
	}
	e.doc.CreatedDateTimeUTC = formatDPSTime(now)
	if prev != nil {
		e.doc.CreatedDateTimeUTC = prev.doc.CreatedDateTimeUTC
	}
	e.doc.LastUpdatedDateTimeUTC = formatDPSTime(now)
	e.doc.ETag = newEnrollmentETag()
	m[key] = e
	view := e.view(d.individualStateLocked(e))
	d.mu.Unlock()
	d.saveOrLog()
	d.log.Info("dps: "+e.kind()+" stored", "id", e.id(), "attestation", e.doc.Attestation.Type, "status", e.doc.ProvisioningStatus)
	return view, nil
}

// individualStateLocked returns the registration state of an individual
// enrollment's device, or nil; d.mu is held.
func (d *dps) individualStateLocked(e *enrollment) *registrationStateJSON {
	if e.group {
		return nil
	}
	rec := d.registrations[strings.ToLower(e.id())]
	if rec == nil || rec.EnrollmentGroupID != "" {
		return nil
	}
	st := rec.State
	return &st
}

// getEnrollment returns an enrollment as the service API gives it.
func (d *dps) getEnrollment(group bool, id string) (enrollmentDoc, *dpsError) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.storeLocked(group)[strings.ToLower(id)]
	if e == nil {
		return enrollmentDoc{}, errDPSNotFound(fmt.Sprintf("Enrollment %s not found.", clip(id)))
	}
	return e.view(d.individualStateLocked(e)), nil
}

// enrollmentByID returns a stored enrollment.
func (d *dps) enrollmentByID(group bool, id string) (*enrollment, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.storeLocked(group)[strings.ToLower(id)]
	return e, e != nil
}

// deleteEnrollment deletes an enrollment. An individual enrollment's
// registration record goes with it; a group's records stay, to be
// deleted through /registrations/{id}. The devices stay in the hub, as
// DPS leaves them.
func (d *dps) deleteEnrollment(group bool, id, ifMatch string) *dpsError {
	key := strings.ToLower(id)
	d.mu.Lock()
	m := d.storeLocked(group)
	e := m[key]
	if e == nil {
		d.mu.Unlock()
		return errDPSNotFound(fmt.Sprintf("Enrollment %s not found.", clip(id)))
	}
	if rerr := checkIfMatch(ifMatch, true, e.doc.ETag); rerr != nil {
		d.mu.Unlock()
		return rerr
	}
	delete(m, key)
	if rec := d.registrations[key]; !group && rec != nil && rec.EnrollmentGroupID == "" {
		delete(d.registrations, key)
	}
	d.mu.Unlock()
	d.saveOrLog()
	d.log.Info("dps: "+e.kind()+" deleted", "id", e.id())
	return nil
}

// getRegistration returns a device's registration state.
func (d *dps) getRegistration(id string) (registrationStateJSON, *dpsError) {
	d.mu.Lock()
	defer d.mu.Unlock()
	rec := d.registrations[strings.ToLower(id)]
	if rec == nil {
		return registrationStateJSON{}, errDPSNotFound(fmt.Sprintf("Registration %s not found.", clip(id)))
	}
	st := rec.State
	st.X509, st.SymmetricKey = nil, nil
	return st, nil
}

// deleteRegistration deletes a device's registration record: its next
// registration is an initial assignment again.
func (d *dps) deleteRegistration(id, ifMatch string) *dpsError {
	key := strings.ToLower(id)
	d.mu.Lock()
	rec := d.registrations[key]
	if rec == nil {
		d.mu.Unlock()
		return errDPSNotFound(fmt.Sprintf("Registration %s not found.", clip(id)))
	}
	if rerr := checkIfMatch(ifMatch, true, rec.State.ETag); rerr != nil {
		d.mu.Unlock()
		return rerr
	}
	delete(d.registrations, key)
	d.mu.Unlock()
	d.saveOrLog()
	return nil
}

// checkServiceAPIVersion requires exactly one supported api-version.
func checkServiceAPIVersion(values []string) *dpsError {
	if len(values) != 1 || !slices.Contains(dpsServiceAPIVersions, values[0]) {
		return errDPSAPIVersion(strings.Join(values, ","))
	}
	return nil
}
