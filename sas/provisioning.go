package sas

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
)

// ProvisioningKeyName is the key name (skn) of the tokens a device
// presents to the Device Provisioning Service.
const ProvisioningKeyName = "registration"

// ProvisioningResource returns the resource URI a device's token to the
// Device Provisioning Service must cover: "{idScope}/registrations/{registrationID}".
// It is not URL-encoded; Sign encodes it.
func ProvisioningResource(idScope, registrationID string) string {
	return idScope + "/registrations/" + registrationID
}

// DeriveDeviceKey returns the key of the device registrationID in a
// symmetric-key enrollment group whose key is groupKey: the base64
// HMAC-SHA256 of the registration ID under the decoded group key, as the
// Device Provisioning Service computes it ("Symmetric key attestation",
// learn.microsoft.com/azure/iot-dps/concepts-symmetric-key-attestation).
// A factory derives each device's key so that the group key never leaves
// it; the device presents its own key only. An empty registration ID or a
// key that is not base64 is an error.
func DeriveDeviceKey(groupKey, registrationID string) (string, error) {
	key, err := DecodeKey(groupKey)
	if err != nil {
		return "", err
	}
	if registrationID == "" {
		return "", errors.New("sas: empty registration id")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(registrationID))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}
