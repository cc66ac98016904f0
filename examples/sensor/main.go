// Command sensor is a device program that reports a temperature when the
// cloud asks: the direct method getReading (optional payload
// {"unit": "celsius"|"fahrenheit"}) answers 200 with
// {"celsius": 48.312, "source": "thermal_zone0", "readAt": RFC 3339}, and
// "fahrenheit" too when asked for.
//
//	IOTHUB_DEVICE_CONNECTION_STRING='HostName=…' sensor
//	IOTHUB_DEVICE_CONNECTION_STRING="$(cat localhub-data/sensor-1.txt)" go run ./examples/sensor -ca localhub-data/ca.pem
//
// On a Raspberry Pi the value is the SoC's temperature from
// /sys/class/thermal/thermal_zone0/temp. Where that file does not exist,
// or with -simulate, the value is simulated.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/device/deviceflag"
)

// config is the program's command line.
type config struct {
	deviceflag.Flags
	Simulate bool // -simulate
}

func main() {
	var cfg config
	cfg.Register(flag.CommandLine)
	flag.BoolVar(&cfg.Simulate, "simulate", false, "simulate the temperature even where "+thermalZone+" exists")
	flag.Parse()
	log := cfg.Logger(os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM) // systemd stops a service with SIGTERM
	defer stop()
	if err := run(ctx, log, cfg, thermalZone); err != nil {
		log.Error("sensor stopped", "err", err)
		os.Exit(1)
	}
}

// run serves getReading until ctx ends, reading the temperature from
// path unless it is missing or -simulate is given.
func run(ctx context.Context, log *slog.Logger, cfg config, path string) error {
	client, err := cfg.NewClient(&device.ClientOptions{Logger: log})
	if err != nil {
		return err
	}
	defer client.Close()
	s := &sensor{path: path, now: time.Now}
	if cfg.Simulate {
		s.path = ""
	} else if _, err := os.Stat(path); err != nil {
		log.Info("no thermal zone here: the temperature is simulated", "err", err)
		s.path = ""
	}
	source := s.path
	if source == "" {
		source = sourceSimulated
	}
	log.Info("sensor ready", "transport", cfg.Transport, "source", source)
	if err := client.Run(ctx, s.methods()); ctx.Err() == nil {
		return err
	}
	return nil // stopped by a signal
}
