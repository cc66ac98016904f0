// Command localhub runs a local, TLS-only stand-in for Azure IoT Hub: MQTT
// on -mqtt-port, AMQP on -amqp-port, and on -https-port MQTT and AMQP over
// WebSockets and the REST API that invokes direct methods. It writes the CA certificate and the
// connection strings to -dir and keeps its keys there across restarts. For
// the modules it also plays the IoT Edge runtime: a workload API on
// -dir/workload.sock and one <device>_<module>.env of IOTEDGE_ variables
// each. It enforces the throttles and job limits of an IoT Hub tier, S1 with
// one unit unless -sku and -units say otherwise (-sku none for no limits).
// On the same ports it plays the Device Provisioning Service, with the
// enrollments of -enrollment-groups and -enrollments; its ID scope and
// service connection string go to -dir/idscope.txt and -dir/dps.txt.
//
//	go run ./examples/localhub -https-port 8443 -amqp-port 5671 -devices device-1,device-2/module-1
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/directmethods/iotdevice/internal/localhub"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "token" {
		os.Exit(token(os.Args[2:], os.Stdout, os.Stderr))
	}
	hostName := flag.String("hostname", "localhost", "host name in connection strings, tokens and the certificate")
	listen := flag.String("listen", "127.0.0.1", "IP address to listen on")
	mqttPort := flag.Int("mqtt-port", 8883, "MQTT over TLS port (0 picks a free port)")
	amqpPort := flag.Int("amqp-port", 5671, "AMQP over TLS port (0 picks a free port)")
	httpsPort := flag.Int("https-port", 443, "HTTPS port for the REST API and WebSockets (0 picks a free port)")
	devices := flag.String("devices", "device-1", "comma-separated identities to register; dev/mod registers a module")
	dir := flag.String("dir", "./localhub-data", "directory for ca.pem, service.txt, <identity>.txt, idscope.txt, dps.txt and the hub's keys")
	leaves := flag.String("leaf-devices", "", "comma-separated leaf=edge pairs: leaf, registered if new, connects through the IoT Edge device edge, whose modules may call it")
	sku := flag.String("sku", "S1", "IoT Hub tier whose throttles and job limits the hub enforces: F1, S1, S2, S3, or none")
	units := flag.Int("units", 1, "number of units of the tier (F1: 1; S1, S2: up to 200; S3: up to 10)")
	var dpsF dpsFlags // the Device Provisioning Service (provisioning.go)
	dpsF.register(flag.CommandLine)
	flag.Usage = usage
	flag.Parse()
	tier, err := localhub.ParseTier(*sku, *units)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	leafPairs, err := parseLeafDevices(*leaves)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	hub, err := localhub.Start(ctx, localhub.Options{
		HostName:   *hostName,
		ListenAddr: *listen,
		MQTTPort:   *mqttPort,
		AMQPPort:   *amqpPort,
		HTTPSPort:  *httpsPort,
		Dir:        *dir,
		Devices:    append(splitList(*devices), leafPairs.identities()...),
		Logger:     logger,
		Tier:       tier,
		DPS:        dpsF.options(),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, explain(err, portFlags{mqtt: *mqttPort, amqp: *amqpPort, https: *httpsPort}))
		os.Exit(1)
	}
	defer hub.Close()
	for _, p := range leafPairs {
		if err := hub.SetParent(p.leaf, p.edge); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if err := ensureEnrollments(hub, dpsF); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}

	if *dir != "" {
		if err := hub.WriteConnectionFiles(*dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	first := ""
	if ids := splitList(*devices); len(ids) > 0 {
		first = ids[0]
	}
	hub.PrintSummary(os.Stdout, *dir, first)
	printProvisioning(os.Stdout, hub, dpsF, filepath.Join(*dir, "ca.pem"))
	fmt.Printf("Throttles and job limits of IoT Hub tier %s (-sku, -units).\n", tier)
	fmt.Printf("Press Ctrl+C to stop.\n")
	<-ctx.Done()
	fmt.Println("Stopping.")
}

// usage is -h's text: the two ways to run the command, then the flags.
func usage() {
	out := flag.CommandLine.Output()
	fmt.Fprintf(out, "Usage:\n  localhub [flags]             run the hub until Ctrl+C\n  localhub token [-dir d] [-ttl 1h]\n                               print a service token (for curl's Authorization header) from a running hub's -dir\n\nFlags:\n")
	flag.PrintDefaults()
}

// leafPair is one -leaf-devices entry.
type leafPair struct{ leaf, edge string }

type leafPairs []leafPair

// identities are the devices the pairs name, for registration.
func (ps leafPairs) identities() []string {
	var ids []string
	for _, p := range ps {
		ids = append(ids, p.leaf, p.edge)
	}
	return ids
}

// parseLeafDevices reads -leaf-devices: leaf=edge pairs, separated by
// commas. A device id with "=" or "," in it cannot be given here.
func parseLeafDevices(s string) (leafPairs, error) {
	var pairs leafPairs
	for _, entry := range splitList(s) {
		leaf, edge, ok := strings.Cut(entry, "=")
		if !ok || leaf == "" || edge == "" || strings.Contains(leaf, "/") || strings.Contains(edge, "/") {
			return nil, fmt.Errorf("-leaf-devices: %q is not leaf=edge with two device ids", entry)
		}
		pairs = append(pairs, leafPair{leaf: leaf, edge: edge})
	}
	return pairs, nil
}

// splitList splits a comma-separated flag, dropping empty entries.
func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// portFlags are the ports asked for on the command line.
type portFlags struct{ mqtt, amqp, https int }

// explain turns a start error into advice, naming the flag to change when
// a port cannot be bound.
func explain(err error, ports portFlags) string {
	var le *localhub.ListenError
	if !errors.As(err, &le) {
		return err.Error()
	}
	if le.Listener == "workload" {
		return fmt.Sprintf("%v\nThe IoT Edge workload API's socket goes in -dir; remove what is in its place, or choose another -dir.", err)
	}
	flagName, port := "-https-port", ports.https
	switch le.Listener {
	case "mqtt":
		flagName, port = "-mqtt-port", ports.mqtt
	case "amqp":
		flagName, port = "-amqp-port", ports.amqp
	}
	suggestion := 0 // a free port
	if port > 0 && port < 1024 {
		suggestion = port + 8000 // 443 → 8443
	}
	if errors.Is(err, os.ErrPermission) {
		return fmt.Sprintf("%v\nThe system refused port %d: ports below 1024 need privileges. Use %s %d instead.", err, port, flagName, suggestion)
	}
	return fmt.Sprintf("%v\nPort %d is not available. Choose another with %s (0 picks a free port).", err, port, flagName)
}
