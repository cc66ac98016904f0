package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"time"
)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// options are the command's flags.
type options struct {
	transports  string
	device      string
	devices     int
	concurrency int
	duration    time.Duration
	count       int
	payload     int
	asJSON      bool
	compare     bool
	runs        int
	fleet       int
	fleetInProc bool
	childHub    int
	childDevs   bool
	inProcess   bool
	cpuProfile  string
	devProfile  string
	external    ExternalHub
	soak        time.Duration
	seed        uint64
	reportEvery time.Duration
	verbose     bool
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	var o options
	var cs stringList
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.transports, "transport", "mqtt", "transports, comma-separated: mqtt, mqtt-ws, amqp, amqp-ws; with -soak, all four by default")
	fs.StringVar(&o.device, "device", KindSDK, "device kind: sdk (this SDK; answers acknowledged: MQTT QoS 1, AMQP unsettled), sdk-at-most-once (this SDK with AnswerAtMostOnce: MQTT QoS 0, AMQP pre-settled), raw (the protocol library alone, answering at most once), raw-at-least-once (raw, answers acknowledged), floor (MQTT by hand, one goroutine, QoS 0 answers; mqtt and mqtt-ws only), floor-at-least-once (floor, QoS 1 answers), floor-handoff (floor with each request handed to one of 16 worker goroutines, QoS 0 answers) or floor-handoff-at-least-once (floor-handoff, QoS 1 answers)")
	fs.IntVar(&o.devices, "devices", 1, "device connections the calls are spread over; with -soak, devices per transport (default 8)")
	fs.IntVar(&o.concurrency, "concurrency", 1, "concurrent callers")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "length of each run (unless -count)")
	fs.IntVar(&o.count, "count", 0, "calls per run (overrides -duration)")
	fs.IntVar(&o.payload, "payload", DefaultPayloadBytes, "request payload bytes, echoed back")
	fs.BoolVar(&o.asJSON, "json", false, "one JSON object per line")
	fs.BoolVar(&o.compare, "compare", false, "per transport, run each SDK device, its raw floor and (MQTT) its hand-written floor and handoff floor back to back and print the ratios: sdk vs raw-at-least-once, floor-at-least-once and floor-handoff-at-least-once, sdk-at-most-once vs raw, floor and floor-handoff")
	fs.IntVar(&o.runs, "runs", 1, "with -compare: runs of each kind; medians are reported")
	fs.IntVar(&o.fleet, "fleet", 0, "fleet mode: connect this many idle SDK clients over MQTT, measure, invoke each once")
	fs.BoolVar(&o.fleetInProc, "fleet-hub-in-process", false, "fleet mode: run the hub in this process instead of a child process")
	fs.IntVar(&o.childHub, "child-hub", 0, "internal: serve a hub with this many devices for a parent bench process")
	fs.DurationVar(&o.soak, "soak", 0, "soak mode: inject faults at random for this long into devices calling continuously, then check that every device recovers and nothing leaked")
	fs.Uint64Var(&o.seed, "seed", 0, "with -soak: seed of the random faults and calls (default: from the clock; printed)")
	fs.DurationVar(&o.reportEvery, "report-every", 30*time.Second, "with -soak: period of the progress reports")
	fs.BoolVar(&o.verbose, "v", false, "with -soak: also log each fault to standard error (hub restarts, wrong answers and the clients' and hub's warnings always are)")
	fs.BoolVar(&o.childDevs, "child-devices", false, "internal: serve devices for a parent bench process")
	fs.BoolVar(&o.inProcess, "devices-in-process", !ChildDevicesSupported, "run the devices under test in this process, with the hub and the callers, instead of a child process; their CPU time is then not measured")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of this process (the hub unless -hub-url, the callers, and the devices with -devices-in-process) to this file")
	fs.StringVar(&o.devProfile, "device-cpuprofile", "", "write a CPU profile of the devices' child process to this file (with several runs, the last one's is left)")
	fs.StringVar(&o.external.URL, "hub-url", "", "use the hub at this https URL instead of starting one")
	fs.StringVar(&o.external.Service, "service", "", "with -hub-url: the service connection string")
	fs.StringVar(&o.external.CAFile, "ca", "", "with -hub-url: PEM file of the hub's CA (default: system roots)")
	fs.IntVar(&o.external.MQTTPort, "mqtt-port", 0, "with -hub-url: MQTT port (default 8883)")
	fs.IntVar(&o.external.AMQPPort, "amqp-port", 0, "with -hub-url: AMQP port (default 5671)")
	fs.Var(&cs, "connection-string", "with -hub-url: a device connection string (repeat for -devices > 1)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("bench: unexpected arguments %q", fs.Args())
	}
	o.external.ConnectionStrings = cs
	if o.soak > 0 {
		if err := o.soakDefaults(fs); err != nil {
			return nil, err
		}
	}
	if o.external.URL == "" && (o.external.Service != "" || len(cs) > 0) {
		return nil, errors.New("bench: -service and -connection-string need -hub-url")
	}
	if o.external.URL != "" && o.external.Service == "" {
		return nil, errors.New("bench: -hub-url needs -service")
	}
	return &o, nil
}

// Main runs the bench command with args (without the program name) and
// returns the exit status: 0; 1 when a run could not complete or had
// failed calls, or a soak failed; 2 for bad flags.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, err)
		}
		return 2
	}
	if o.childHub > 0 {
		if err := ServeChildHub(ctx, o.childHub, os.Stdin, stdout); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	}
	if o.childDevs {
		if err := ServeChildDevices(ctx, os.Stdin, stdout); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	}
	if o.cpuProfile != "" {
		stopProfile, err := startCPUProfile(o.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer stopProfile()
	}
	if err := o.run(ctx, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// startCPUProfile starts writing a CPU profile to file; the returned
// function stops it and closes the file.
func startCPUProfile(file string) (func(), error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("bench: cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench: cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// errFailedCalls is returned when some invocations failed.
var errFailedCalls = errors.New("bench: some calls failed")

func (o *options) run(ctx context.Context, w, stderr io.Writer) error {
	if o.soak > 0 {
		return o.runSoak(ctx, w, stderr)
	}
	if o.fleet > 0 {
		return o.runFleet(ctx, w)
	}
	devices := o.devices
	t, closeHub, err := o.target(ctx, devices)
	if err != nil {
		return err
	}
	defer closeHub()
	cfg := Config{Devices: o.devices, Concurrency: o.concurrency, Duration: o.duration, Count: o.count, PayloadBytes: o.payload}
	if !o.inProcess {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: find own executable for the child devices: %w", err)
		}
		cfg.DeviceCommand, cfg.DeviceCPUProfile = []string{exe, "-child-devices"}, o.devProfile
	}
	failed := false
	report := func(r Result) {
		failed = failed || r.Errors > 0
		Write(w, r, o.asJSON)
	}
	for _, name := range strings.Split(o.transports, ",") {
		cfg.Transport = strings.TrimSpace(name)
		if !o.compare {
			cfg.Device = o.device
			r, err := Run(ctx, t, cfg)
			if err != nil {
				return err
			}
			report(r)
			continue
		}
		for _, pair := range Pairs(cfg.Transport) {
			c, err := Compare(ctx, t, cfg, pair, o.runs, report)
			if err != nil {
				return err
			}
			if err := Write(w, c, o.asJSON); err != nil {
				return err
			}
		}
	}
	if failed {
		return errFailedCalls
	}
	return nil
}

// target returns the external hub's target, or starts a hub in this
// process; the returned function stops it.
func (o *options) target(ctx context.Context, devices int) (*Target, func(), error) {
	if o.external.URL != "" {
		t, err := o.external.Target()
		return t, func() {}, err
	}
	hub, t, err := StartLocalHub(ctx, devices)
	if err != nil {
		return nil, nil, err
	}
	return t, func() { hub.Close() }, nil
}

// runFleet runs fleet mode, with the hub in a child process unless told
// otherwise or given an external hub.
func (o *options) runFleet(ctx context.Context, w io.Writer) error {
	cfg := FleetConfig{Clients: o.fleet}
	var t *Target
	switch {
	case o.external.URL != "":
		var err error
		if t, err = o.external.Target(); err != nil {
			return err
		}
	case o.fleetInProc:
		if _, err := RaiseFileLimit(); err != nil {
			return err
		}
		hub, target, err := StartLocalHub(ctx, o.fleet)
		if err != nil {
			return err
		}
		defer hub.Close()
		t, cfg.HubInProcess = target, true
	default:
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: find own executable for the child hub: %w", err)
		}
		startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		child, err := StartChildHub(startCtx, exe, "-child-hub", fmt.Sprint(o.fleet))
		if err != nil {
			return err
		}
		defer child.Close()
		t, cfg.HubRSS = child.Target, child.RSS
	}
	res, err := Fleet(ctx, t, cfg)
	if res.ConnectTime > 0 || err == nil {
		Write(w, res, o.asJSON)
	}
	if err != nil {
		return err
	}
	if res.Errors > 0 {
		return errFailedCalls
	}
	return nil
}
