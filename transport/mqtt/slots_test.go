package mqtt_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport/mqtt"
	"github.com/google/go-cmp/cmp"
)

// TestUnacknowledgedAnswersFreeHandlerSlots: against a hub that never
// sends a PUBACK, a client with 16 handler slots answers 40 calls: a
// handler's slot is free once its answer is written, not acknowledged.
func TestUnacknowledgedAnswersFreeHandlerSlots(t *testing.T) {
	const calls, slots = 40, 16
	hub := mqtt.StartHubWithoutPubacks(t)
	cred, err := sas.NewKeyCredential(base64.StdEncoding.EncodeToString(mqtt.TestKey), "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	client, err := device.NewClient(mqtt.TestHubName, "device-1", cred, &device.ClientOptions{
		GatewayHostName:      "127.0.0.1",
		Port:                 hub.Port(),
		TLSConfig:            &tls.Config{RootCAs: hub.Roots()},
		MaxConcurrentMethods: slots,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := device.NewMethodMux()
	mux.HandleFunc("echo", func(_ context.Context, req *device.MethodRequest) (*device.MethodResponse, error) {
		return &device.MethodResponse{Status: 200, Payload: req.Payload}, nil
	})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer client.Close()
	wg.Go(func() { _ = client.Run(t.Context(), mux) }) // owned by the test: ends with Close, joined above

	s := hub.Subscribed(t)
	want := map[string]string{}
	for i := range calls {
		rid, payload := fmt.Sprint(i), fmt.Sprintf(`{"n":%d}`, i)
		want[rid] = payload
		s.Request(t, "$iothub/methods/POST/echo/?$rid="+rid, []byte(payload))
	}
	got := map[string]string{}
	for range calls {
		rid, payload := s.Answer(t)
		got[rid] = string(payload)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("answers (-want +got):\n%s", diff)
	}
}
