package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/directmethods/iotdevice/device/deviceflag"
)

// soakFlags are the flags soak mode takes; the others measure speed or
// another hub and do not apply.
var soakFlags = map[string]bool{"soak": true, "seed": true, "report-every": true, "v": true, "devices": true, "transport": true, "json": true, "cpuprofile": true}

// soakDefaults refuses the flags soak mode does not take and gives the
// others their soak defaults: 8 devices per transport, all four
// transports, a seed from the clock.
func (o *options) soakDefaults(fs *flag.FlagSet) error {
	set := map[string]bool{}
	var refused []string
	fs.Visit(func(f *flag.Flag) {
		set[f.Name] = true
		if !soakFlags[f.Name] {
			refused = append(refused, "-"+f.Name)
		}
	})
	if len(refused) > 0 {
		return fmt.Errorf("bench: %s do not apply to -soak", strings.Join(refused, ", "))
	}
	if !set["devices"] {
		o.devices = 8
	}
	if !set["transport"] {
		o.transports = strings.Join(deviceflag.TransportNames, ",")
	}
	if !set["seed"] {
		o.seed = uint64(time.Now().UnixNano())
	}
	return nil
}

// errSoakFailed is returned when the soak's verdict is a failure.
var errSoakFailed = errors.New("bench: the soak failed")

// runSoak runs soak mode, reporting to w and logging to stderr.
func (o *options) runSoak(ctx context.Context, w, stderr io.Writer) error {
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	cfg := SoakConfig{
		Devices: o.devices, Duration: o.soak, ReportEvery: o.reportEvery, Seed: o.seed,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
	}
	for _, name := range strings.Split(o.transports, ",") {
		cfg.Transports = append(cfg.Transports, strings.TrimSpace(name))
	}
	end, err := Soak(ctx, cfg, func(r SoakReport) { Write(w, r, o.asJSON) })
	if err != nil {
		return err
	}
	if !end.Passed() {
		return fmt.Errorf("%w: %s", errSoakFailed, strings.Join(end.Failures, "; "))
	}
	return nil
}
