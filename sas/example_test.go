package sas_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"sync/atomic"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/device/hubtest"
	"github.com/directmethods/iotdevice/sas"
)

func ExampleParseConnectionString() {
	cs, err := sas.ParseConnectionString(
		"HostName=myhub.azure-devices.net;DeviceId=dev-01;ModuleId=fan-ctl;SharedAccessKey=bG9jYWwtaHViLXRlc3Qta2V5LTAxMjM0NTY3ODlhYmNkZWY=")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cs.HostName, cs.DeviceID, cs.ModuleID)
	fmt.Println(cs) // the key is redacted

	// Errors name the key at fault but never show a value.
	_, err = sas.ParseConnectionString("HostName=myhub.azure-devices.net;DeviceId=dev-01;SharedAccessKey=not-base64!")
	fmt.Println(err)
	// Output:
	// myhub.azure-devices.net dev-01 fan-ctl
	// HostName=myhub.azure-devices.net;DeviceId=dev-01;ModuleId=fan-ctl;SharedAccessKey=REDACTED
	// sas: invalid connection string: SharedAccessKey: sas: key is not valid base64
}

func ExampleSign() {
	key, err := sas.DecodeKey("bG9jYWwtaHViLXRlc3Qta2V5LTAxMjM0NTY3ODlhYmNkZWY=")
	if err != nil {
		log.Fatal(err)
	}
	resource := sas.Resource("myhub.azure-devices.net", "dev-01", "")
	expiry := time.Unix(1767225600, 0) // 2026-01-01T00:00:00Z
	token := sas.Sign(key, resource, "", expiry)
	fmt.Println(token)

	// ParseToken reads a token's claims back.
	parsed, err := sas.ParseToken(token)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(parsed.Resource, parsed.Expiry.UTC().Format(time.RFC3339))
	// Output:
	// SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev-01&sig=%2BitkQGIHQUM%2BDNRTbRNrWLESz9QQ%2FVFlP1QrtqFUt4Y%3D&se=1767225600
	// myhub.azure-devices.net/devices/dev-01 2026-01-01T00:00:00Z
}

func ExampleNewKeyCredential() {
	cred, err := sas.NewKeyCredential("bG9jYWwtaHViLXRlc3Qta2V5LTAxMjM0NTY3ODlhYmNkZWY=", "", 10*time.Minute)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cred) // the key is redacted

	// A transport asks for a fresh token each time it connects.
	start := time.Now()
	token, expiry, err := cred.Token(context.Background(), sas.Resource("myhub.azure-devices.net", "dev-01", ""))
	if err != nil {
		log.Fatal(err)
	}
	parsed, err := sas.ParseToken(token)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(parsed.Resource)
	fmt.Println("valid for", expiry.Sub(start).Round(time.Minute))
	// Output:
	// sas.KeyCredential{keyName: "", lifetime: 10m0s, key: REDACTED}
	// myhub.azure-devices.net/devices/dev-01
	// valid for 10m0s
}

// Tokens signed outside the program, by a hardware security module or a
// signing service that holds the key: the client asks for one whenever it
// connects or renews. Here the "signer" is a function holding the key of
// a device on a local hub.
func ExampleTokenFunc() {
	hub, err := hubtest.Start(context.Background(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	dev, err := hub.AddDevice("sensor-7")
	if err != nil {
		log.Fatal(err)
	}
	cs, err := sas.ParseConnectionString(dev.ConnectionString())
	if err != nil {
		log.Fatal(err)
	}
	key, err := sas.DecodeKey(cs.SharedAccessKey) // in the HSM, in real life
	if err != nil {
		log.Fatal(err)
	}
	var signed atomic.Int32
	signer := sas.TokenFunc(func(ctx context.Context, resource string) (string, time.Time, error) {
		signed.Add(1)
		expiry := time.Now().Add(time.Hour)
		return sas.Sign(key, resource, "", expiry), expiry, nil
	})

	client, err := device.NewClient(hub.HostName(), "sensor-7", signer, &device.ClientOptions{
		Port:      hub.Port(hubtest.MQTT),
		TLSConfig: &tls.Config{RootCAs: hub.CertPool()},
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := device.NewMethodMux()
	mux.HandleFunc("ping", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
		return device.JSONResponse(200, "pong")
	})
	done := make(chan error, 1)
	go func() { done <- client.Run(context.Background(), mux) }()
	defer func() { client.Close(); <-done }()

	res, err := dev.Invoke(context.Background(), "ping", nil, &hubtest.InvokeOptions{ConnectTimeout: 30 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status, string(res.Payload))
	fmt.Println("tokens signed:", signed.Load())
	// Output:
	// 200 "pong"
	// tokens signed: 1
}

// A factory derives each device's key from its enrollment group's key,
// so that the group key never leaves the factory.
func ExampleDeriveDeviceKey() {
	key, err := sas.DeriveDeviceKey("8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==",
		"sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(key)
	// Output: Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=
}
