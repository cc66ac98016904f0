// Command bench measures direct-method calls through a local hub (or one
// given by -hub-url) to a device built on this SDK, to a raw device written
// on the protocol library alone, or to the floor device written by hand
// (MQTT only), each in a child process whose CPU time it reports per call;
// fleet mode measures many idle
// clients in one process, and soak mode runs clients under random faults
// and hub restarts for a while and checks every answer and the recovery.
// See internal/bench for what each mode does.
//
//	go run ./examples/bench -transport mqtt,mqtt-ws -compare -concurrency 16
//	go run ./examples/bench -device floor -json -count 10000
//	go run ./examples/bench -fleet 10000
//	go run ./examples/bench -soak 10m
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/directmethods/iotdevice/internal/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := bench.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
