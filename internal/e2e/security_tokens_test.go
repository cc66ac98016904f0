package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/internal/localhub"
	"github.com/directmethods/iotdevice/internal/sastoken"
	"github.com/directmethods/iotdevice/sas"
)

// serviceKey returns the key name and the decoded key of the hub's
// service connection string.
func serviceKey(t *testing.T, hub *localhub.Hub) (keyName string, key []byte) {
	t.Helper()
	fields := map[string]string{}
	for _, part := range strings.Split(hub.ServiceConnectionString(), ";") {
		k, v, _ := strings.Cut(part, "=")
		fields[k] = v
	}
	key, err := sas.DecodeKey(fields["SharedAccessKey"])
	if err != nil || fields["SharedAccessKeyName"] == "" {
		t.Fatalf("service connection string: %v", err)
	}
	return fields["SharedAccessKeyName"], key
}

// identityKey returns the decoded key of a registered identity.
func identityKey(t *testing.T, hub *localhub.Hub, identity string) []byte {
	t.Helper()
	cs, err := hub.ConnectionString(identity)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := sas.ParseConnectionString(cs)
	if err != nil {
		t.Fatal(err)
	}
	key, err := sas.DecodeKey(parsed.SharedAccessKey)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// TestServiceAPIRefusesBadTokens invokes a method through the REST API
// with tokens the hub must refuse with 401: forged, expired, scoped to one
// device, a device's own token, a module's token, none at all. The same
// request with a good service token gets through, so the refusals are about
// the token alone.
func TestServiceAPIRefusesBadTokens(t *testing.T) {
	hub := startHub(t, "dev-1", "dev-1/mod-1", "dev-2")
	runDevice(t, hub, "dev-1", transports[0], echoMux(), nil)
	waitSubscribed(t, hub, "dev-1")
	keyName, key := serviceKey(t, hub)
	host := hub.HostName()
	hour := time.Now().Add(time.Hour)
	forgedKey := []byte("not the hub's service key at all")
	tests := []struct {
		name, authorization string
		want                int
	}{
		{"good service token", sas.Sign(key, host, keyName, hour), 200},
		{"forged", sas.Sign(forgedKey, host, keyName, hour), 401},
		{"expired", sas.Sign(key, host, keyName, time.Now().Add(-sastoken.MaxClockSkew-time.Minute)), 401},
		{"scoped to another device", sas.Sign(key, sas.Resource(host, "dev-2", ""), keyName, hour), 401},
		{"unknown policy", sas.Sign(key, host, "nosuchpolicy", hour), 401},
		{"device token", sas.Sign(identityKey(t, hub, "dev-1"), sas.Resource(host, "dev-1", ""), "", hour), 401},
		{"module token", sas.Sign(identityKey(t, hub, "dev-1/mod-1"), sas.Resource(host, "dev-1", "mod-1"), "", hour), 401},
		{"no token", "", 401},
		{"garbage", "SharedAccessSignature sr=&sig=&se=", 401},
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: hub.CertPool(), ServerName: host}}}
	defer client.CloseIdleConnections()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(ctxTimeout(t, 20*time.Second), http.MethodPost,
				"https://"+hub.HTTPSAddr()+"/twins/dev-1/methods?api-version=2021-04-12",
				bytes.NewReader([]byte(`{"methodName":"echo","payload":1,"responseTimeoutInSeconds":10}`)))
			if err != nil {
				t.Fatal(err)
			}
			req.Host = host
			req.Header.Set("Content-Type", "application/json")
			if tt.authorization != "" {
				req.Header.Set("Authorization", tt.authorization)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

// TestDeviceConnectionRefusesBadCredentials connects through the SDK with
// credentials the hub must refuse, over every transport: a token of
// another device, a module's token for its parent device, a token signed
// with the wrong key, and a client certificate whose thumbprint is not
// registered, a token expired beyond the clock skew allowed. Each stops Run with CodeUnauthorized after one attempt.
func TestDeviceConnectionRefusesBadCredentials(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startHub(t, "dev-1", "dev-1/mod-1", "dev-2")
			if _, err := hub.AddX509Device("cert-dev"); err != nil {
				t.Fatal(err)
			}
			// A certificate for the same id from another hub: same subject,
			// another thumbprint.
			other := startHub(t)
			strangerCert, err := other.AddX509Device("cert-dev")
			if err != nil {
				t.Fatal(err)
			}
			host := hub.HostName()
			hour := time.Now().Add(time.Hour)
			// fixed presents a token as is, so that the hub, not the SDK,
			// judges it.
			fixed := func(token string) sas.Credential {
				return sas.TokenFunc(func(context.Context, string) (string, time.Time, error) { return token, hour, nil })
			}
			certCred, err := sas.NewCertificateCredential(strangerCert)
			if err != nil {
				t.Fatal(err)
			}
			tests := []struct {
				name, deviceID string
				cred           sas.Credential
			}{
				{"another device's token", "dev-2", fixed(sas.Sign(identityKey(t, hub, "dev-1"), sas.Resource(host, "dev-1", ""), "", hour))},
				{"module token for its device", "dev-1", fixed(sas.Sign(identityKey(t, hub, "dev-1/mod-1"), sas.Resource(host, "dev-1", "mod-1"), "", hour))},
				{"forged token", "dev-1", fixed(sas.Sign([]byte("forged key, forged key, forged!!"), sas.Resource(host, "dev-1", ""), "", hour))},
				{"device key for another device", "dev-2", fixed(sas.Sign(identityKey(t, hub, "dev-1"), sas.Resource(host, "dev-2", ""), "", hour))},
				{"expired token", "dev-1", fixed(sas.Sign(identityKey(t, hub, "dev-1"), sas.Resource(host, "dev-1", ""), "", time.Now().Add(-sastoken.MaxClockSkew-time.Minute)))},
				{"unregistered certificate", "cert-dev", certCred},
			}
			for _, tt := range tests {
				states := newStateLog()
				opts := deviceOptions(t, hub, tr)
				states.tweak(opts)
				client, err := device.NewClient(host, tt.deviceID, tt.cred, opts)
				if err != nil {
					t.Fatalf("%s: %v", tt.name, err)
				}
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				err = client.Run(ctx, echoMux())
				cancel()
				var de *device.Error
				if !errors.As(err, &de) || de.Code != device.CodeUnauthorized {
					t.Errorf("%s: Run = %v, want CodeUnauthorized", tt.name, err)
				}
				if n := states.count(device.StateConnecting); n != 1 {
					t.Errorf("%s: %d attempts, want 1", tt.name, n)
				}
			}
		})
	}
}
