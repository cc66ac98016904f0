package hubtest_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device/hubtest"
	"github.com/directmethods/iotdevice/sas"
)

// TestProvisioning provisions a device of each kind of enrollment through
// the hub's DPS, and follows an enrollment disabled, enabled and deleted.
func TestProvisioning(t *testing.T) {
	hub := hubtest.New(t, nil)
	if !regexp.MustCompile(`^0ne[0-9A-F]{8}$`).MatchString(hub.IDScope()) {
		t.Errorf("IDScope() = %q", hub.IDScope())
	}
	if cs := hub.ProvisioningServiceConnectionString(); !strings.HasPrefix(cs, "HostName=localhost;SharedAccessKeyName=provisioningserviceowner;SharedAccessKey=") {
		t.Errorf("ProvisioningServiceConnectionString() = %q", cs)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	group, err := hub.AddEnrollmentGroup("keys", nil)
	if err != nil {
		t.Fatal(err)
	}
	individual, err := hub.AddEnrollment("single", &hubtest.EnrollmentOptions{DeviceID: "single-device"})
	if err != nil {
		t.Fatal(err)
	}
	x509Group, err := hub.AddX509EnrollmentGroup("certs", nil)
	if err != nil {
		t.Fatal(err)
	}
	x509Single, err := hub.AddX509Enrollment("single-cert", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		enrollment             *hubtest.Enrollment
		registrationID, device string
	}{
		{group, "keys-1", "keys-1"},
		{individual, "single", "single-device"},
		{x509Group, "certs-1", "certs-1"},
		{x509Single, "single-cert", "single-cert"},
	} {
		key, cert := deviceCredential(t, tt.enrollment, tt.registrationID)
		state, status, err := register(ctx, hub, tt.registrationID, key, cert)
		if err != nil || state.Status != "assigned" || state.DeviceID != tt.device || state.AssignedHub != hub.HostName() {
			t.Errorf("%s: register = %+v, %d, %v", tt.registrationID, state, status, err)
			continue
		}
		if _, err := hub.Device(tt.device); err != nil {
			t.Errorf("Device(%q): %v", tt.device, err)
		}
	}

	key, _ := deviceCredential(t, group, "keys-2")
	for _, step := range []struct {
		name   string
		do     func() error
		status int
	}{
		{"disabled", func() error { return group.SetEnabled(false) }, http.StatusUnauthorized},
		{"enabled again", func() error { return group.SetEnabled(true) }, http.StatusOK},
		{"deleted", group.Delete, http.StatusUnauthorized},
	} {
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if _, status, _ := register(ctx, hub, "keys-2", key, nil); status != step.status {
			t.Errorf("%s: register answered %d, want %d", step.name, status, step.status)
		}
	}
	if _, err := x509Group.DeviceKey("x"); err == nil {
		t.Error("DeviceKey of an X.509 group")
	}
	if _, err := individual.Certificate("single"); err == nil {
		t.Error("Certificate of a symmetric-key enrollment")
	}
	if _, err := hub.Device("dev/mod"); err == nil {
		t.Error("Device took a module's name")
	}
}

// deviceCredential is the key or certificate a device of e presents.
func deviceCredential(t *testing.T, e *hubtest.Enrollment, registrationID string) (string, *tls.Certificate) {
	t.Helper()
	if e.PrimaryKey() == "" {
		cert, err := e.Certificate(registrationID)
		if err != nil {
			t.Fatal(err)
		}
		return "", cert
	}
	key, err := e.DeviceKey(registrationID)
	if err != nil {
		t.Fatal(err)
	}
	return key, nil
}

// registrationState is the part of DPS's answer a device needs.
type registrationState struct {
	Status      string `json:"status"`
	AssignedHub string `json:"assignedHub"`
	DeviceID    string `json:"deviceId"`
}

// register registers registrationID with the hub's DPS over HTTPS, signed
// with key (or with the client certificate cert when key is empty), and
// polls, waiting the retry-after DPS asks for, until the answer is final.
// It returns the registration state and the final HTTP status.
func register(ctx context.Context, hub *hubtest.Hub, registrationID, key string, cert *tls.Certificate) (*registrationState, int, error) {
	token := ""
	if key != "" {
		decoded, err := sas.DecodeKey(key)
		if err != nil {
			return nil, 0, err
		}
		token = sas.Sign(decoded, sas.ProvisioningResource(hub.IDScope(), registrationID), sas.ProvisioningKeyName, time.Now().Add(time.Hour))
	}
	tlsConfig := &tls.Config{RootCAs: hub.CertPool(), ServerName: hub.HostName()}
	if cert != nil {
		tlsConfig.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{TLSClientConfig: tlsConfig}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	base := "https://127.0.0.1:" + strconv.Itoa(hub.HTTPSPort()) + "/" + hub.IDScope() + "/registrations/" + registrationID
	body := []byte(`{"registrationId":"` + registrationID + `"}`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+"/register?api-version=2019-03-31", bytes.NewReader(body))
	status := 0
	for attempt := 0; err == nil && attempt < 10; attempt++ {
		if token != "" {
			req.Header.Set("Authorization", token)
		}
		req.Header.Set("Content-Type", "application/json")
		var resp *http.Response
		if resp, err = client.Do(req); err != nil {
			break
		}
		status = resp.StatusCode
		var answer struct {
			OperationID       string             `json:"operationId"`
			Status            string             `json:"status"`
			RegistrationState *registrationState `json:"registrationState"`
		}
		err = json.NewDecoder(resp.Body).Decode(&answer)
		resp.Body.Close()
		switch {
		case err != nil:
		case resp.StatusCode == http.StatusOK:
			return answer.RegistrationState, status, nil
		case resp.StatusCode != http.StatusAccepted:
			err = fmt.Errorf("DPS answered %s", resp.Status)
		default:
			seconds, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			time.Sleep(time.Duration(seconds) * time.Second)
			req, err = http.NewRequestWithContext(ctx, http.MethodGet, base+"/operations/"+answer.OperationID+"?api-version=2019-03-31", nil)
		}
	}
	if err == nil {
		err = fmt.Errorf("still assigning")
	}
	return nil, status, err
}
