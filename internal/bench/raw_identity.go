package bench

import (
	"errors"
	"fmt"
	"time"

	"github.com/directmethods/iotdevice/sas"
)

// rawTokenLifetime is how long a raw device's SAS token stays valid: longer
// than any benchmark run, so a raw device never renews it.
const rawTokenLifetime = time.Hour

// rawIdentity parses the connection string of a raw device, which must be
// a device identity with a shared access key, and signs the SAS token the
// device presents to the hub.
func rawIdentity(connectionString string) (cs *sas.ConnectionString, token string, err error) {
	cs, err = sas.ParseConnectionString(connectionString)
	if err != nil {
		return nil, "", fmt.Errorf("bench: raw device: %w", err)
	}
	if cs.SharedAccessKey == "" || cs.ModuleID != "" {
		return nil, "", errors.New("bench: raw device: needs a device identity with a SharedAccessKey")
	}
	key, err := sas.DecodeKey(cs.SharedAccessKey)
	if err != nil {
		return nil, "", fmt.Errorf("bench: raw device: %w", err)
	}
	token = sas.Sign(key, sas.Resource(cs.HostName, cs.DeviceID, ""), cs.SharedAccessKeyName, time.Now().Add(rawTokenLifetime))
	return cs, token, nil
}
