package localhub

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// The custom allocation webhook's request and answer ("Understand custom
// allocation policies", learn.microsoft.com/azure/iot-dps/concepts-custom-allocation).
type allocationRequestJSON struct {
	IndividualEnrollment *enrollmentDoc           `json:"individualEnrollment,omitempty"`
	EnrollmentGroup      *enrollmentDoc           `json:"enrollmentGroup,omitempty"`
	DeviceRuntimeContext deviceRuntimeContextJSON `json:"deviceRuntimeContext"`
	LinkedHubs           []string                 `json:"linkedHubs"`
}

// deviceRuntimeContextJSON describes the registering device. The current
// hub and device id are there only when the device registered before.
type deviceRuntimeContextJSON struct {
	RegistrationID        string          `json:"registrationId"`
	CurrentIoTHubHostName string          `json:"currentIotHubHostName,omitempty"`
	CurrentDeviceID       string          `json:"currentDeviceId,omitempty"`
	X509                  *struct{}       `json:"x509,omitempty"`
	SymmetricKey          *struct{}       `json:"symmetricKey,omitempty"`
	Payload               json.RawMessage `json:"payload,omitempty"`
}

// allocationResponseJSON is the webhook's answer. initialTwin is read but
// not applied: the hub keeps no desired properties.
type allocationResponseJSON struct {
	IoTHubHostName string          `json:"iotHubHostName"`
	InitialTwin    json.RawMessage `json:"initialTwin"`
	Payload        json.RawMessage `json:"payload"`
}

// maxWebhookAnswer bounds the webhook's answer.
const maxWebhookAnswer = 64 * 1024

// newWebhookClient returns the client that calls custom allocation
// webhooks: it trusts the system's roots and the hub's CA (hubCAPEM), and
// uses no proxy, as webhooks on loopback are the common case here. It
// keeps no idle connection, which would outlive the hub.
func newWebhookClient(hubCAPEM []byte) *http.Client {
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	roots.AppendCertsFromPEM(hubCAPEM)
	return &http.Client{Transport: &http.Transport{
		Proxy:             nil,
		TLSClientConfig:   &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true,
	}}
}

// callWebhook asks an enrollment's custom allocation webhook where to
// assign a device, and returns the payload it returns for the device.
// The enrollment goes without its keys and certificates, and with the
// webhook URL's query (an Azure Functions key) masked, as DPS sends it.
// Errors never hold the URL.
func (d *dps) callWebhook(ctx context.Context, e *enrollment, registrationID string, prev *registrationRecord, payload json.RawMessage) (json.RawMessage, error) {
	doc := e.view(nil)
	doc.Attestation = &attestationJSON{Type: doc.Attestation.Type}
	doc.RegistrationState = nil
	doc.CustomAllocationDefinition = &customAllocationJSON{WebhookURL: maskQuery(e.doc.CustomAllocationDefinition.WebhookURL),
		APIVersion: e.doc.CustomAllocationDefinition.APIVersion}
	req := allocationRequestJSON{LinkedHubs: []string{d.hostName}}
	if e.group {
		req.EnrollmentGroup = &doc
	} else {
		req.IndividualEnrollment = &doc
	}
	rc := &req.DeviceRuntimeContext
	rc.RegistrationID, rc.Payload = registrationID, payload
	if e.symmetricKey() {
		rc.SymmetricKey = &struct{}{}
	} else {
		rc.X509 = &struct{}{}
	}
	if prev != nil && prev.State.Status == statusAssigned {
		rc.CurrentIoTHubHostName, rc.CurrentDeviceID = prev.State.AssignedHub, prev.State.DeviceID
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode the allocation request: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, e.doc.CustomAllocationDefinition.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return nil, errors.New("custom allocation webhook: invalid URL")
	}
	hreq.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := d.webhooks.Do(hreq)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL and its key
		}
		return nil, fmt.Errorf("custom allocation webhook: %w", err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxWebhookAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("custom allocation webhook: read the answer: %w", err)
	}
	return decodeAllocationAnswer(resp.StatusCode, answer, d.hostName)
}

// maskQuery replaces a URL's query with "****", as DPS shows webhook URLs
// ("Understand custom allocation policies").
func maskQuery(s string) string {
	if base, _, ok := strings.Cut(s, "?"); ok {
		return base + "?****"
	}
	return s
}

// decodeAllocationAnswer reads the webhook's answer: a 2xx status and an
// AllocationResponse naming hostName, the one linked hub. It returns the
// payload for the device, nil when none.
func decodeAllocationAnswer(status int, answer []byte, hostName string) (json.RawMessage, error) {
	if status < 200 || status > 299 {
		return nil, fmt.Errorf("custom allocation webhook: status %d", status)
	}
	if len(answer) > maxWebhookAnswer {
		return nil, errors.New("custom allocation webhook: the answer is too large")
	}
	var a allocationResponseJSON
	if err := json.Unmarshal(answer, &a); err != nil {
		return nil, fmt.Errorf("custom allocation webhook: the answer is not an AllocationResponse: %s", clip(err.Error()))
	}
	if !strings.EqualFold(a.IoTHubHostName, hostName) {
		return nil, fmt.Errorf("custom allocation webhook: iotHubHostName %q is not a linked IoT hub (%s)", clip(a.IoTHubHostName), hostName)
	}
	if string(a.Payload) == "null" {
		return nil, nil
	}
	return a.Payload, nil
}
