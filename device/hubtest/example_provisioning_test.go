package hubtest_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"strconv"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/device/hubtest"
	"github.com/directmethods/iotdevice/sas"
)

// A device of a symmetric-key enrollment group knows only the ID scope
// and its key: it registers with the hub's Device Provisioning Service,
// learns its hub and device id, connects and serves a method, with no
// cloud involved. (It registers over DPS's HTTPS API here, in a few
// lines; a provisioning client would do the same over MQTT.)
func Example_provisioning() {
	ctx := context.Background()
	hub, err := hubtest.Start(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	group, err := hub.AddEnrollmentGroup("thermostats", nil)
	if err != nil {
		log.Fatal(err)
	}
	// The key the factory derived from the group's for this device.
	key, err := group.DeviceKey("thermostat-7")
	if err != nil {
		log.Fatal(err)
	}
	state, _, err := register(ctx, hub, "thermostat-7", key, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(state.Status, state.AssignedHub, state.DeviceID)

	dev, err := hub.Device(state.DeviceID)
	if err != nil {
		log.Fatal(err)
	}
	client, err := dev.NewClient(hubtest.MQTT, nil)
	if err != nil {
		log.Fatal(err)
	}
	mux := device.NewMethodMux()
	mux.HandleFunc("getTemperature", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
		return device.JSONResponse(200, map[string]float64{"celsius": 21.5})
	})
	done := make(chan error, 1)
	go func() { done <- client.Run(ctx, mux) }()
	res, err := dev.Invoke(ctx, "getTemperature", nil, &hubtest.InvokeOptions{ConnectTimeout: 30 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status, string(res.Payload))
	client.Close()
	<-done
	// Output:
	// assigned localhost thermostat-7
	// 200 {"celsius":21.5}
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
