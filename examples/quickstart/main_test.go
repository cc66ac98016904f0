package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device/hubtest"
)

// TestQuickstart runs the README's main command, on every transport.
func TestQuickstart(t *testing.T) {
	for _, transport := range hubtest.Transports {
		tr := transport.String()
		t.Run(tr, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			var out strings.Builder
			if err := run(ctx, &out, tr); err != nil {
				t.Fatalf("quickstart: %v\n%s", err, out.String())
			}
			for _, want := range []string{
				"device: connected over " + tr,
				`device answers 200 {"target":22.5}`,
				`device answers 400 {"error":"celsius must be between 5 and 35"}`,
				`device answers 501 {"error":"method not implemented","method":"selfDestruct"}`,
				"done: every method was invoked",
			} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
	if err := run(t.Context(), &strings.Builder{}, "smoke-signals"); err == nil {
		t.Error("an unknown transport was accepted")
	}
}
