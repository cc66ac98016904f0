package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/directmethods/iotdevice/internal/localhub"
)

// token prints a fresh service token from the service connection string
// that the hub wrote into dir (service.txt): the Authorization value for
// the REST API, for example
//
//	export SERVICE_TOKEN="$(go run ./examples/localhub token)"
func token(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "./localhub-data", "the directory the hub writes its files to")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cs, err := os.ReadFile(filepath.Join(*dir, "service.txt"))
	if err != nil {
		fmt.Fprintf(stderr, "read the service connection string: %v (start the hub first, with the same -dir)\n", err)
		return 1
	}
	// The base URL is not used: the client only signs here.
	svc, err := localhub.NewServiceClient("https://localhost", strings.TrimSpace(string(cs)), nil)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", filepath.Join(*dir, "service.txt"), err)
		return 1
	}
	if *ttl <= 0 {
		fmt.Fprintln(stderr, "-ttl must be positive")
		return 2
	}
	fmt.Fprintln(stdout, svc.Token(*ttl))
	return 0
}
