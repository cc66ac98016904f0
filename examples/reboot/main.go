// Command reboot is a device program that reboots its machine when the
// cloud asks: the direct method reboot ({"delaySeconds": 0-3600},
// optional, default 10) answers 200 at once with
// {"scheduledAt": RFC 3339, "delaySeconds": n} and reboots after the
// delay; a second request while one is pending answers 409.
// cancelReboot cancels a pending reboot (409 when none is pending).
//
//	IOTHUB_DEVICE_CONNECTION_STRING='HostName=…' reboot
//	IOTHUB_DEVICE_CONNECTION_STRING="$(cat localhub-data/pi-1.txt)" go run ./examples/reboot -ca localhub-data/ca.pem
//
// The reboot runs "systemctl reboot", or the command of -command. Off a
// Raspberry Pi the program runs in dry-run mode by default: it only logs.
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
	Command string // -command
	DryRun  bool   // -dry-run
}

func main() {
	var cfg config
	cfg.Register(flag.CommandLine)
	flag.StringVar(&cfg.Command, "command", "systemctl reboot", "command that reboots the machine (run without a shell)")
	flag.BoolVar(&cfg.DryRun, "dry-run", !isRaspberryPi(modelFiles...), "only log instead of rebooting (default true off a Raspberry Pi)")
	flag.Parse()
	log := cfg.Logger(os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM) // systemd stops a service with SIGTERM
	defer stop()
	if err := run(ctx, log, cfg, systemClock{}); err != nil {
		log.Error("reboot stopped", "err", err)
		os.Exit(1)
	}
}

// run serves the reboot methods until ctx ends, then cancels a pending
// reboot.
func run(ctx context.Context, log *slog.Logger, cfg config, c clock) error {
	command, err := execCommand(cfg.Command)
	if err != nil {
		return err
	}
	client, err := cfg.NewClient(&device.ClientOptions{Logger: log})
	if err != nil {
		return err
	}
	defer client.Close()
	r := newRebooter(log, c, command, cfg.DryRun)
	defer r.shutdown()
	log.Info("reboot ready", "transport", cfg.Transport, "command", cfg.Command, "dry_run", cfg.DryRun)
	if err := client.Run(ctx, r.methods()); ctx.Err() == nil {
		return err
	}
	return nil // stopped by a signal
}
