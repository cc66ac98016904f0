// Command provision takes a device from its ID scope and key to serving
// direct methods: it registers with the Device Provisioning Service,
// prints its assignment as one JSON line on stdout,
// {"assignedHub":"…","deviceId":"…"}, then connects to the hub it was
// assigned and answers the method "echo" (200 with the request's payload)
// until it is stopped.
//
//	DPS_ID_SCOPE=0ne00000000 DPS_REGISTRATION_ID=sensor-7 DPS_GROUP_KEY='…' provision
//	provision -provisioning-host localhost -port 8883 -ca localhub-data/ca.pem -id-scope … -registration-id sensor-7
//
// The key comes from -group-key (an enrollment group's key: the device key
// is derived from it) or -key (the device's own key, for an individual
// enrollment), or from $DPS_GROUP_KEY or $DPS_DEVICE_KEY, which keep it
// out of the process list. With -cache FILE the assignment is kept in FILE
// and the next start connects without registering, as DPS advises; it
// registers again when the hub refuses the cached identity.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/device/provisioning"
	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport/mqtt"
	"github.com/directmethods/iotdevice/transport/mqtt/mqttws"
)

// Environment variables read when the matching flag is not given.
const (
	envIDScope        = "DPS_ID_SCOPE"
	envRegistrationID = "DPS_REGISTRATION_ID"
	envGroupKey       = "DPS_GROUP_KEY"
	envDeviceKey      = "DPS_DEVICE_KEY"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "provision:", err)
		os.Exit(1)
	}
}

// flags are the command's settings.
type flags struct {
	host, idScope, registrationID, groupKey, key string
	caFile, transport, modelID, cache            string
	port                                         int
	verbose                                      bool
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (*flags, error) {
	var f flags
	fs := flag.NewFlagSet("provision", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.host, "provisioning-host", provisioning.DefaultHost, "the Device Provisioning Service's device endpoint")
	fs.StringVar(&f.idScope, "id-scope", "", "the ID scope (default $"+envIDScope+")")
	fs.StringVar(&f.registrationID, "registration-id", "", "the registration ID (default $"+envRegistrationID+")")
	fs.StringVar(&f.groupKey, "group-key", "", "an enrollment group's symmetric key: the device key is derived from it (default $"+envGroupKey+")")
	fs.StringVar(&f.key, "key", "", "the device's own symmetric key, for an individual enrollment (default $"+envDeviceKey+")")
	fs.StringVar(&f.caFile, "ca", "", "PEM file of the CA to trust instead of the system roots (the local hub's ca.pem)")
	fs.IntVar(&f.port, "port", 0, "port of DPS and of the hub (default 8883, or 443 with -transport mqtt-ws)")
	fs.StringVar(&f.transport, "transport", "mqtt", "mqtt (MQTT over TLS) or mqtt-ws (MQTT over WebSockets)")
	fs.StringVar(&f.modelID, "model-id", "", "the IoT Plug and Play model ID to announce")
	fs.StringVar(&f.cache, "cache", "", "a file to keep the assignment in, so that the next start skips registering")
	fs.BoolVar(&f.verbose, "v", false, "log to stderr")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, v := range []struct {
		value *string
		env   string
	}{{&f.idScope, envIDScope}, {&f.registrationID, envRegistrationID}, {&f.groupKey, envGroupKey}, {&f.key, envDeviceKey}} {
		if *v.value == "" {
			*v.value = getenv(v.env)
		}
	}
	switch {
	case f.idScope == "":
		return nil, errors.New("no ID scope: set -id-scope or $" + envIDScope)
	case f.registrationID == "":
		return nil, errors.New("no registration ID: set -registration-id or $" + envRegistrationID)
	case f.groupKey == "" && f.key == "":
		return nil, errors.New("no key: set -group-key or $" + envGroupKey + " (a group's key), or -key or $" + envDeviceKey + " (the device's own)")
	case f.groupKey != "" && f.key != "":
		return nil, errors.New("both a group key and a device key: give one")
	case f.transport != "mqtt" && f.transport != "mqtt-ws":
		return nil, fmt.Errorf("unknown transport %q: want mqtt or mqtt-ws", f.transport)
	}
	return &f, nil
}

// run registers (or reads the cached assignment), prints it, and serves
// echo until ctx ends (a clean stop) or the device fails for good.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	f, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.DiscardHandler)
	if f.verbose {
		logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	key := f.key
	if f.groupKey != "" {
		if key, err = sas.DeriveDeviceKey(f.groupKey, f.registrationID); err != nil {
			return fmt.Errorf("group key: %w", err)
		}
	}
	var tlsConfig *tls.Config
	if f.caFile != "" {
		if tlsConfig, err = trust(f.caFile); err != nil {
			return err
		}
	}
	opts := &provisioning.Options{Host: f.host, Port: f.port, TLSConfig: tlsConfig, ModelID: f.modelID, Logger: logger}
	deviceOpts := &device.ClientOptions{Port: f.port, ModelID: f.modelID, Logger: logger, Transport: mqtt.NewDialer(nil)}
	if f.transport == "mqtt-ws" {
		opts.Network = mqttws.Network()
		deviceOpts.Transport = mqttws.NewDialer(nil)
	}
	pc, err := provisioning.NewSymmetricKeyClient(f.idScope, f.registrationID, key, opts)
	if err != nil {
		return err
	}

	cached := readCache(f.cache, logger)
	for {
		result := cached
		if result == nil {
			if result, err = pc.Register(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			writeCache(f.cache, result, logger)
		}
		line, _ := json.Marshal(struct {
			AssignedHub string `json:"assignedHub"`
			DeviceID    string `json:"deviceId"`
		}{result.AssignedHub, result.DeviceID})
		fmt.Fprintf(stdout, "%s\n", line)

		err = serve(ctx, pc, result, deviceOpts)
		var refused *device.Error
		if cached != nil && errors.As(err, &refused) && refused.Code != device.CodeTLS {
			// The hub refuses the cached identity: the device may have
			// moved. Register again, once.
			logger.Warn("the hub refused the cached assignment; registering again", "err", err)
			cached = nil
			continue
		}
		return err
	}
}

// serve runs the device client of result until ctx ends (nil) or it fails
// for good.
func serve(ctx context.Context, pc *provisioning.Client, result *provisioning.Result, opts *device.ClientOptions) error {
	client, err := pc.NewDeviceClient(result, opts)
	if err != nil {
		return err
	}
	mux := device.NewMethodMux()
	mux.HandleFunc("echo", func(_ context.Context, req *device.MethodRequest) (*device.MethodResponse, error) {
		return &device.MethodResponse{Status: 200, Payload: req.Payload}, nil
	})
	err = client.Run(ctx, mux)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// trust returns a TLS configuration that trusts the CA in caFile.
func trust(caFile string) (*tls.Config, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, errors.New("no PEM certificate in " + caFile)
	}
	return &tls.Config{RootCAs: roots}, nil
}

// readCache returns the assignment cached in file, or nil when there is
// none or it cannot be used.
func readCache(file string, logger *slog.Logger) *provisioning.Result {
	if file == "" {
		return nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			logger.Warn("cannot read the cached assignment; registering", "err", err)
		}
		return nil
	}
	r, err := provisioning.ParseResult(data)
	if err != nil {
		logger.Warn("the cached assignment is unusable; registering", "err", err)
		return nil
	}
	return r
}

// writeCache keeps r in file, replacing it whole.
func writeCache(file string, r *provisioning.Result, logger *slog.Logger) {
	if file == "" {
		return
	}
	data, _ := json.Marshal(r)
	tmp := fmt.Sprintf("%s.%d.tmp", file, time.Now().UnixNano())
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		logger.Warn("cannot cache the assignment", "err", err)
		return
	}
	if err := os.Rename(tmp, file); err != nil {
		logger.Warn("cannot cache the assignment", "err", err)
		_ = os.Remove(tmp)
	}
}
