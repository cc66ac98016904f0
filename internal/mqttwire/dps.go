package mqttwire

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The Device Provisioning Service (DPS) over MQTT: a device connects with
// client id {registration id} and username
// "{id scope}/registrations/{registration id}/api-version={version}",
// subscribes to DPSResponseFilter, registers on DPSRegisterTopic and, while
// the answer is 202, polls on DPSPollTopic; DPS answers on
// "$dps/registrations/res/{status}/?$rid={rid}[&retry-after={seconds}]".
//
// Sources:
//   - Use MQTT to communicate with DPS:
//     https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-dps
//   - Azure/azure-sdk-for-c, sdk/inc/azure/iot/az_iot_provisioning_client.h
//     and sdk/src/azure/iot/az_iot_provisioning_client.c (topics,
//     retry-after)
//   - Azure/azure-iot-sdk-node, provisioning/transport/mqtt/src/mqtt.ts
//     (username, QoS 1, query parsing of the answer topic)
const (
	// DPSResponseFilter subscribes to every answer of DPS.
	DPSResponseFilter = "$dps/registrations/res/#"
	// DPSAPIVersion is the DPS API version a device announces: the one
	// the official SDKs send and DPS documents for MQTT.
	DPSAPIVersion = "2019-03-31"

	dpsRegisterPrefix = "$dps/registrations/PUT/iotdps-register/?"
	dpsPollPrefix     = "$dps/registrations/GET/iotdps-get-operationstatus/?"
	dpsResponsePrefix = "$dps/registrations/res/"
)

// ErrBadDPSTopic reports a DPS topic that is not one of the forms above.
var ErrBadDPSTopic = errors.New("mqtt: malformed DPS topic")

// DPSRegisterTopic is the topic of a registration request with request id
// rid.
func DPSRegisterTopic(rid string) string {
	return dpsRegisterPrefix + "$rid=" + url.QueryEscape(rid)
}

// DPSPollTopic is the topic of an operation-status request with request id
// rid, for the registration operation operationID.
func DPSPollTopic(rid, operationID string) string {
	return dpsPollPrefix + "$rid=" + url.QueryEscape(rid) + "&operationId=" + url.QueryEscape(operationID)
}

// DPSResponseTopic is the topic DPS answers a request with: status, the
// request's id and, when retryAfter is positive, the seconds to wait
// before the next request.
func DPSResponseTopic(status int, rid string, retryAfter int) string {
	t := dpsResponsePrefix + strconv.Itoa(status) + "/?$rid=" + url.QueryEscape(rid)
	if retryAfter > 0 {
		t += "&retry-after=" + strconv.Itoa(retryAfter)
	}
	return t
}

// DPSResponse is what the topic of a DPS answer says.
type DPSResponse struct {
	Status     int
	RequestID  string
	RetryAfter time.Duration // zero when the topic has none
}

// ParseDPSResponseTopic reads the topic of a DPS answer. The query is
// parsed as one (the Node.js SDK does so too): the request id is $rid's
// value, retry-after is optional, and other properties are ignored.
func ParseDPSResponseTopic(topic string) (DPSResponse, error) {
	rest, ok := strings.CutPrefix(topic, dpsResponsePrefix)
	if !ok {
		return DPSResponse{}, fmt.Errorf("%w: does not start with %q", ErrBadDPSTopic, dpsResponsePrefix)
	}
	status, query, ok := strings.Cut(rest, "/?")
	if !ok {
		return DPSResponse{}, fmt.Errorf("%w: no query after the status", ErrBadDPSTopic)
	}
	code, err := strconv.Atoi(status)
	if err != nil || code < 100 || code > 999 {
		return DPSResponse{}, fmt.Errorf("%w: status %q is not a 3-digit number", ErrBadDPSTopic, status)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return DPSResponse{}, fmt.Errorf("%w: %w", ErrBadDPSTopic, err)
	}
	r := DPSResponse{Status: code, RequestID: q.Get("$rid")}
	if r.RequestID == "" {
		return DPSResponse{}, fmt.Errorf("%w: no $rid", ErrBadDPSTopic)
	}
	if s := q.Get("retry-after"); s != "" {
		secs, err := strconv.Atoi(s)
		if err != nil || secs < 0 || secs > maxRetryAfter {
			return DPSResponse{}, fmt.Errorf("%w: retry-after %q is not a number of seconds", ErrBadDPSTopic, s)
		}
		r.RetryAfter = time.Duration(secs) * time.Second
	}
	return r, nil
}

// maxRetryAfter bounds the retry-after a topic may carry: an hour.
const maxRetryAfter = 3600

// DPSRequestKind tells a registration from an operation-status request.
type DPSRequestKind int

const (
	DPSRegister DPSRequestKind = iota + 1 // $dps/registrations/PUT/iotdps-register
	DPSPoll                               // $dps/registrations/GET/iotdps-get-operationstatus
)

// DPSRequest is what the topic of a device's DPS request says.
type DPSRequest struct {
	Kind        DPSRequestKind
	RequestID   string
	OperationID string // DPSPoll only
}

// ParseDPSRequestTopic reads the topic of a device's DPS request, as DPS
// does. A poll must name its operation.
func ParseDPSRequestTopic(topic string) (DPSRequest, error) {
	var r DPSRequest
	query, ok := strings.CutPrefix(topic, dpsRegisterPrefix)
	if ok {
		r.Kind = DPSRegister
	} else if query, ok = strings.CutPrefix(topic, dpsPollPrefix); ok {
		r.Kind = DPSPoll
	} else {
		return DPSRequest{}, fmt.Errorf("%w: not a registration or operation-status request", ErrBadDPSTopic)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return DPSRequest{}, fmt.Errorf("%w: %w", ErrBadDPSTopic, err)
	}
	r.RequestID = q.Get("$rid")
	if r.RequestID == "" {
		return DPSRequest{}, fmt.Errorf("%w: no $rid", ErrBadDPSTopic)
	}
	if r.Kind == DPSPoll {
		if r.OperationID = q.Get("operationId"); r.OperationID == "" {
			return DPSRequest{}, fmt.Errorf("%w: an operation-status request without operationId", ErrBadDPSTopic)
		}
	}
	return r, nil
}

// DPSUsername is the CONNECT username of a registration:
//
//	{idScope}/registrations/{registrationID}/api-version={DPSAPIVersion}[&ClientVersion={user agent}]
//
// with the user agent query-escaped, as the Node.js SDK writes it.
func DPSUsername(idScope, registrationID, userAgent string) string {
	u := idScope + "/registrations/" + registrationID + "/api-version=" + DPSAPIVersion
	if userAgent != "" {
		u += "&ClientVersion=" + url.QueryEscape(userAgent)
	}
	return u
}

// DPSIdentity is what a registration's CONNECT username names.
type DPSIdentity struct {
	IDScope        string
	RegistrationID string
	APIVersion     string
}

// IsDPSUsername reports whether username has the form of a registration's
// rather than a device's: its second segment is "registrations".
func IsDPSUsername(username string) bool {
	_, rest, ok := strings.Cut(username, "/")
	return ok && strings.HasPrefix(rest, "registrations/")
}

// ParseDPSUsername reads a registration's CONNECT username,
// "{idScope}/registrations/{registrationID}/api-version={v}[&...]". Other
// properties after the version are ignored.
func ParseDPSUsername(username string) (DPSIdentity, error) {
	scope, rest, ok := strings.Cut(username, "/registrations/")
	if !ok || scope == "" || strings.IndexByte(scope, '/') >= 0 {
		return DPSIdentity{}, errors.New("mqtt: DPS username is not {idScope}/registrations/{registrationId}/api-version={version}")
	}
	regID, query, ok := strings.Cut(rest, "/")
	if !ok || regID == "" {
		return DPSIdentity{}, errors.New("mqtt: DPS username names no registration id")
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return DPSIdentity{}, fmt.Errorf("mqtt: DPS username: %w", err)
	}
	v := q.Get("api-version")
	if v == "" {
		return DPSIdentity{}, errors.New("mqtt: DPS username has no api-version")
	}
	return DPSIdentity{IDScope: scope, RegistrationID: regID, APIVersion: v}, nil
}
