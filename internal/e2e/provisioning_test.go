package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device/provisioning"
	"github.com/directmethods/iotdevice/internal/localhub"
	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport/mqtt/mqttws"
)

// The Device Provisioning Service end to end: the SDK's provisioning
// client against the local hub's DPS, over MQTT and MQTT over WebSockets,
// then the provisioned device serving a method invoked through the REST
// API.

// provisioningTransports are the transports the provisioning client
// speaks.
var provisioningTransports = []string{"mqtt", "mqtt-ws"}

// dpsRetryAfter is the hub's retry-after in these tests: short, but the
// protocol's shortest (one second) so that it is honoured for real.
const dpsRetryAfter = time.Second

// startDPSHub starts a hub whose DPS answers with dpsRetryAfter; dir, when
// set, keeps its state across restarts.
func startDPSHub(t *testing.T, dir string, dps localhub.DPSOptions) (*localhub.Hub, localhub.Options) {
	t.Helper()
	if dps.RetryAfter == 0 {
		dps.RetryAfter = dpsRetryAfter
	}
	opts := localhub.Options{Dir: dir, Logger: testLogger(t), DPS: dps}
	hub, err := localhub.Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	opts.MQTTPort, opts.AMQPPort, opts.HTTPSPort = hub.MQTTPort(), hub.AMQPPort(), hub.HTTPSPort()
	return hub, opts
}

// provisioningOptions are the provisioning client's options that reach
// hub (through port, which may be a proxy's) over transportName.
func provisioningOptions(hub *localhub.Hub, transportName string, port int) *provisioning.Options {
	o := &provisioning.Options{Host: hub.HostName(), Port: port, TLSConfig: &tls.Config{RootCAs: hub.CertPool()},
		Backoff: func(int) time.Duration { return 50 * time.Millisecond }}
	if isWebSocket(transportName) {
		o.Network = mqttws.Network()
	}
	return o
}

// dpsPort is the hub's port for the provisioning client over
// transportName.
func dpsPort(hub *localhub.Hub, transportName string) int {
	if isWebSocket(transportName) {
		return hub.HTTPSPort()
	}
	return hub.MQTTPort()
}

// serveProvisioned connects the device result names with pc's credential
// over transportName and checks that a method invoked through the REST API
// reaches it.
func serveProvisioned(t *testing.T, hub *localhub.Hub, pc *provisioning.Client, result *provisioning.Result, transportName string) {
	t.Helper()
	opts := deviceOptions(t, hub, transportName)
	client, err := pc.NewDeviceClient(result, opts)
	if err != nil {
		t.Fatal(err)
	}
	runClient(t, result.DeviceID, client, echoMux())
	res, err := hub.ServiceClient().Invoke(ctxTimeout(t, 30*time.Second), result.DeviceID, "",
		localhub.MethodCall{MethodName: "echo", Payload: json.RawMessage(`{"provisioned":true}`), ConnectTimeoutInSeconds: 20})
	if err != nil || res.Status != 200 || compactJSON(res.Payload) != `{"provisioned":true}` {
		t.Fatalf("invoke on the provisioned device = %+v, %v", res, err)
	}
}

// TestProvisioningSymmetricKey: a device of a group (its key derived from
// the group's) and a device of an individual enrollment register, each
// waiting out the hub's retry-after before its poll, are assigned to the
// hub, and serve a method; registering again gives the same device.
func TestProvisioningSymmetricKey(t *testing.T) {
	for _, tr := range provisioningTransports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub, _ := startDPSHub(t, "", localhub.DPSOptions{})
			group, err := hub.PutEnrollmentGroup("sensors", localhub.EnrollmentSpec{})
			if err != nil {
				t.Fatal(err)
			}
			individual, err := hub.PutEnrollment("pump-1", localhub.EnrollmentSpec{DeviceID: "pump-device"})
			if err != nil {
				t.Fatal(err)
			}
			groupKey, err := sas.DeriveDeviceKey(group.PrimaryKey, "sensor-7")
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range []struct {
				regID, key, wantDevice string
			}{{"sensor-7", groupKey, "sensor-7"}, {"pump-1", individual.PrimaryKey, "pump-device"}} {
				pc, err := provisioning.NewSymmetricKeyClient(hub.IDScope(), d.regID, d.key, provisioningOptions(hub, tr, dpsPort(hub, tr)))
				if err != nil {
					t.Fatal(err)
				}
				begin := time.Now()
				result, err := pc.Register(ctxTimeout(t, 30*time.Second))
				if err != nil {
					t.Fatalf("%s: Register: %v", d.regID, err)
				}
				if took := time.Since(begin); took < dpsRetryAfter {
					t.Errorf("%s: registered in %v, before the hub's retry-after of %v", d.regID, took, dpsRetryAfter)
				}
				if result.AssignedHub != hub.HostName() || result.DeviceID != d.wantDevice || result.Status != "assigned" {
					t.Errorf("%s: Result %+v, want device %s assigned to %s", d.regID, result, d.wantDevice, hub.HostName())
				}
				again, err := pc.Register(ctxTimeout(t, 30*time.Second))
				if err != nil || again.DeviceID != result.DeviceID || again.AssignedHub != result.AssignedHub {
					t.Errorf("%s: registering again = %+v, %v; want the same device", d.regID, again, err)
				}
				serveProvisioned(t, hub, pc, result, tr)
			}
		})
	}
}

// TestProvisioningX509Group: a device whose certificate the group's CA
// signed registers with it (its registration ID is the certificate's
// common name) and connects to the hub with the same certificate.
func TestProvisioningX509Group(t *testing.T) {
	for _, tr := range provisioningTransports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub, _ := startDPSHub(t, "", localhub.DPSOptions{})
			ca, err := localhub.NewDeviceCA("e2e fleet CA")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := hub.PutEnrollmentGroup("fleet", localhub.EnrollmentSpec{CertificatePEM: ca.CertPEM()}); err != nil {
				t.Fatal(err)
			}
			cert, err := ca.Issue("camera-3")
			if err != nil {
				t.Fatal(err)
			}
			pc, err := provisioning.NewX509Client(hub.IDScope(), cert, provisioningOptions(hub, tr, dpsPort(hub, tr)))
			if err != nil {
				t.Fatal(err)
			}
			result, err := pc.Register(ctxTimeout(t, 30*time.Second))
			if err != nil {
				t.Fatalf("Register: %v", err)
			}
			if result.DeviceID != "camera-3" {
				t.Errorf("DeviceID = %q, want the certificate's common name", result.DeviceID)
			}
			serveProvisioned(t, hub, pc, result, tr)
		})
	}
}

// TestProvisioningRefusalIsFatalAndFast: a wrong key ends Register at
// once, on one connection, with provisioning.ErrUnauthorized, and so does a
// disabled enrollment, which DPS does not tell from a wrong key.
func TestProvisioningRefusalIsFatalAndFast(t *testing.T) {
	for _, tr := range provisioningTransports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub, _ := startDPSHub(t, "", localhub.DPSOptions{})
			if _, err := hub.PutEnrollment("good-1", localhub.EnrollmentSpec{}); err != nil {
				t.Fatal(err)
			}
			if _, err := hub.PutEnrollment("off-1", localhub.EnrollmentSpec{Disabled: true}); err != nil {
				t.Fatal(err)
			}
			wrong, err := sas.DeriveDeviceKey("d3Jvbmcga2V5", "good-1")
			if err != nil {
				t.Fatal(err)
			}
			off, _ := hub.LookupEnrollment(false, "off-1")
			for _, c := range []struct{ regID, key string }{{"good-1", wrong}, {"off-1", off.PrimaryKey}} {
				pc, err := provisioning.NewSymmetricKeyClient(hub.IDScope(), c.regID, c.key, provisioningOptions(hub, tr, dpsPort(hub, tr)))
				if err != nil {
					t.Fatal(err)
				}
				begin := time.Now()
				_, err = pc.Register(ctxTimeout(t, 30*time.Second))
				took := time.Since(begin)
				var e *provisioning.Error
				if !errors.Is(err, provisioning.ErrUnauthorized) || !errors.As(err, &e) || e.Code != 401002 {
					t.Errorf("%s: Register = %v, want ErrUnauthorized with DPS's 401002", c.regID, err)
				}
				if took > 5*time.Second {
					t.Errorf("%s: the refusal took %v", c.regID, took)
				}
				t.Logf("figure: provisioning-refusal transport=%s registration=%s seconds=%.3f", tr, c.regID, took.Seconds())
			}
		})
	}
}

// TestProvisioningRetries: registrations beyond the hub's rate are
// answered 429 with a retry-after and succeed once it has passed; a
// connection reset while polling resumes the same operation on a new
// connection; a hub restarted between the registration and the poll still
// answers the poll.
func TestProvisioningRetries(t *testing.T) {
	for _, tr := range provisioningTransports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			t.Run("throttled", func(t *testing.T) {
				// 12 a minute lets a burst of 12 through, and the 13th waits
				// for its retry-after, 5 s.
				const rate, burst = 12, 13
				hub, _ := startDPSHub(t, "", localhub.DPSOptions{RegistrationsPerMinute: rate})
				group, err := hub.PutEnrollmentGroup("burst", localhub.EnrollmentSpec{})
				if err != nil {
					t.Fatal(err)
				}
				var wg sync.WaitGroup
				errs := make([]error, burst)
				took := make([]time.Duration, burst)
				for i := range burst {
					key, err := sas.DeriveDeviceKey(group.PrimaryKey, fmt.Sprintf("burst-%d", i))
					if err != nil {
						t.Fatal(err)
					}
					pc, err := provisioning.NewSymmetricKeyClient(hub.IDScope(), fmt.Sprintf("burst-%d", i), key, provisioningOptions(hub, tr, dpsPort(hub, tr)))
					if err != nil {
						t.Fatal(err)
					}
					wg.Go(func() { // owned by the test: ends with Register, joined below
						begin := time.Now()
						_, errs[i] = pc.Register(ctxTimeout(t, 2*time.Minute))
						took[i] = time.Since(begin)
					})
				}
				wg.Wait()
				for i, err := range errs {
					if err != nil {
						t.Errorf("burst-%d: Register beyond the rate = %v, want success after the retry-after", i, err)
					}
				}
				// The one beyond the rate waited for its retry-after (5 s,
				// less what the burst itself took).
				if slowest := slices.Max(took); slowest < 4*time.Second {
					t.Errorf("the slowest of %d registrations took %v: none waited for a 429's retry-after", burst, slowest)
				}
			})
			t.Run("reset while polling", func(t *testing.T) {
				hub, _ := startDPSHub(t, "", localhub.DPSOptions{RetryAfter: 2 * time.Second})
				if _, err := hub.PutEnrollment("reset-1", localhub.EnrollmentSpec{}); err != nil {
					t.Fatal(err)
				}
				e, _ := hub.LookupEnrollment(false, "reset-1")
				proxy := startProxy(t, hub, tr)
				pc, err := provisioning.NewSymmetricKeyClient(hub.IDScope(), "reset-1", e.PrimaryKey, provisioningOptions(hub, tr, proxy.Port()))
				if err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() { // owned by the test: ends with Register, received below
					_, err := pc.Register(ctxTimeout(t, time.Minute))
					done <- err
				}()
				// Reset the connection once the hub has started the
				// registration, while the client waits to poll.
				waitOperation(t, hub, "reset-1")
				proxy.Reset()
				if err := <-done; err != nil {
					t.Errorf("Register across a reset = %v", err)
				}
				if n := proxy.Accepted(); n < 2 {
					t.Errorf("%d connections, want a new one after the reset", n)
				}
			})
			t.Run("hub restarted before the poll", func(t *testing.T) {
				hub, opts := startDPSHub(t, t.TempDir(), localhub.DPSOptions{RetryAfter: 3 * time.Second})
				if _, err := hub.PutEnrollment("restart-1", localhub.EnrollmentSpec{}); err != nil {
					t.Fatal(err)
				}
				e, _ := hub.LookupEnrollment(false, "restart-1")
				pc, err := provisioning.NewSymmetricKeyClient(hub.IDScope(), "restart-1", e.PrimaryKey, provisioningOptions(hub, tr, dpsPort(hub, tr)))
				if err != nil {
					t.Fatal(err)
				}
				done := make(chan *provisioning.Result, 1)
				failed := make(chan error, 1)
				go func() { // owned by the test: ends with Register, received below
					r, err := pc.Register(ctxTimeout(t, time.Minute))
					if err != nil {
						failed <- err
						return
					}
					done <- r
				}()
				waitOperation(t, hub, "restart-1")
				hub.Close()
				next, err := localhub.Start(t.Context(), opts)
				if err != nil {
					t.Fatalf("restart: %v", err)
				}
				t.Cleanup(func() { next.Close() })
				select {
				case r := <-done:
					if r.DeviceID != "restart-1" {
						t.Errorf("Result after the restart %+v", r)
					}
					serveProvisioned(t, next, pc, r, tr)
				case err := <-failed:
					t.Errorf("Register across a hub restart = %v", err)
				}
			})
		})
	}
}

// waitOperation waits until the hub has started the registration
// operation of registrationID.
func waitOperation(t *testing.T, hub *localhub.Hub, registrationID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := hub.WaitRegistrationStarted(ctx, registrationID); err != nil {
		t.Fatalf("no registration of %s started: %v", registrationID, err)
	}
}
