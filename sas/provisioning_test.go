package sas_test

import (
	"errors"
	"testing"

	"github.com/directmethods/iotdevice/sas"
)

// TestDeriveDeviceKey checks the known answer of Microsoft's documentation
// ("Symmetric key attestation", Azure IoT Hub Device Provisioning Service).
func TestDeriveDeviceKey(t *testing.T) {
	const (
		groupKey = "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=="
		regID    = "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6"
		want     = "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="
	)
	got, err := sas.DeriveDeviceKey(groupKey, regID)
	if err != nil || got != want {
		t.Errorf("DeriveDeviceKey = %q, %v; want %q", got, err, want)
	}
	if _, err := sas.DeriveDeviceKey("not base64!", regID); !errors.Is(err, sas.ErrInvalidKey) {
		t.Errorf("DeriveDeviceKey with a bad group key = %v, want ErrInvalidKey", err)
	}
	if _, err := sas.DeriveDeviceKey(groupKey, ""); err == nil {
		t.Error("DeriveDeviceKey with an empty registration id succeeded")
	}
}
