// Command fan is a device program: a fan switched from the cloud with the
// direct methods turnOnFan ({"speed": 1-3}, optional), turnOffFan and
// getFanState. Each answers 200 with {"on": bool, "speed": n}.
//
//	IOTHUB_DEVICE_CONNECTION_STRING='HostName=…' fan -pin GPIO18
//	(cd examples/fan && go run . -connection-string "$(cat ../../localhub-data/fan-1.txt)" -ca ../../localhub-data/ca.pem)
//
// With -pin the fan is a real GPIO output (through periph.io), with PWM
// speeds where the pin supports them. Without -pin, or with -simulate, the
// pin is simulated and logs its changes, so the program runs anywhere. The
// fan is switched off when the program stops.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/device/deviceflag"
)

// config is the program's command line.
type config struct {
	deviceflag.Flags
	Pin      string // -pin, such as GPIO18; empty simulates
	Simulate bool   // -simulate
}

func main() {
	var cfg config
	cfg.Register(flag.CommandLine)
	flag.StringVar(&cfg.Pin, "pin", "", "GPIO output driving the fan, such as GPIO18 (default: a simulated pin)")
	flag.BoolVar(&cfg.Simulate, "simulate", false, "simulate the pin even when -pin is given")
	flag.Parse()
	log := cfg.Logger(os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM) // systemd stops a service with SIGTERM
	defer stop()
	if err := run(ctx, log, cfg, periphHost); err != nil {
		log.Error("fan stopped", "err", err)
		os.Exit(1)
	}
}

// run serves the fan's methods until ctx ends, then switches it off.
func run(ctx context.Context, log *slog.Logger, cfg config, gpio gpioHost) error {
	client, err := cfg.NewClient(&device.ClientOptions{Logger: log})
	if err != nil {
		return err
	}
	defer client.Close()
	pin, err := choosePin(gpio, cfg.Pin, cfg.Simulate, log)
	if err != nil {
		return err
	}
	f := newFan(pin)
	defer func() {
		if err := f.shutdown(); err != nil {
			log.Error("could not switch the fan off", "err", err)
		}
	}()
	log.Info("fan ready", "transport", cfg.Transport)
	if err := client.Run(ctx, f.methods()); ctx.Err() == nil {
		return err
	}
	return nil // stopped by a signal
}
