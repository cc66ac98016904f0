package device_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport/transporttest"
)

// BenchmarkDispatchEcho measures one method call through the client on the
// in-memory transport: receive, pool, handler, validation, answer. The
// fake's own bookkeeping is included.
func BenchmarkDispatchEcho(b *testing.B) {
	for _, size := range []int{100, 64 * 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			payload := []byte(`"` + strings.Repeat("x", size-2) + `"`)
			fake := transporttest.NewFake(nil)
			cred, _ := sas.NewKeyCredential(testKeyB64, "", 0)
			c, err := device.NewClient(testHost, "dev-1", cred, &device.ClientOptions{Transport: fake})
			if err != nil {
				b.Fatal(err)
			}
			mux := device.NewMethodMux()
			echoMux(mux)
			done := make(chan error, 1)
			go func() { done <- c.Run(context.Background(), mux) }()
			defer func() { c.Close(); <-done }()
			ctx := context.Background()
			if err := fake.WaitConnected(ctx); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				status, body, err := fake.Invoke(ctx, "echo", payload)
				if err != nil || status != 200 || !bytes.Equal(body, payload) {
					b.Fatalf("%d %.40s %v", status, body, err)
				}
			}
		})
	}
}
