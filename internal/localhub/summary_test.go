package localhub

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPrintSummary(t *testing.T) {
	dir := t.TempDir()
	h := startHub(t, Options{Dir: dir, Devices: []string{"zeta", "dev", "dev/mod"}})
	if err := h.WriteConnectionFiles(dir); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	h.PrintSummary(&b, dir, "zeta")
	out := b.String()
	q := shellQuote
	ca := filepath.Join(dir, "ca.pem")
	// The exact commands, with the hub's MQTT port (not the standard 8883
	// in tests): a device runs the sensor with its connection string read
	// from its file, a module runs edgemodule in its IoT Edge environment.
	want := []string{
		h.MQTTAddr(), h.AMQPAddr(), h.HTTPSAddr(), h.ServiceConnectionString(), h.WorkloadURI(),
		fmt.Sprintf(`IOTHUB_DEVICE_CONNECTION_STRING="$(cat %s)" go run ./examples/sensor -ca %s -port %d`, q(filepath.Join(dir, "zeta.txt")), q(ca), h.MQTTPort()),
		fmt.Sprintf(`IOTHUB_DEVICE_CONNECTION_STRING="$(cat %s)" go run ./examples/sensor -ca %s -port %d`, q(filepath.Join(dir, "dev.txt")), q(ca), h.MQTTPort()),
		fmt.Sprintf(`(set -a; . %s; set +a; go run ./examples/edgemodule -port %d)`, q(filepath.Join(dir, "dev_mod.env")), h.MQTTPort()),
		// The curl command targets the identity named first, not the first
		// in sorted order, with the sensor's method.
		"curl --cacert " + q(ca), "/twins/zeta/methods", `"methodName":"getReading"`,
	}
	for _, id := range h.Identities() {
		cs, _ := h.ConnectionString(id)
		want = append(want, cs)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("summary lacks %q:\n%s", w, out)
		}
	}
	// Every file a command reads exists.
	for _, m := range regexp.MustCompile(`'(/[^']+)'`).FindAllStringSubmatch(out, -1) {
		if _, err := os.Stat(m[1]); err != nil {
			t.Errorf("summary names %s: %v", m[1], err)
		}
	}
	if diff := cmp.Diff([]string{"dev", "dev/mod", "zeta"}, h.Identities()); diff != "" {
		t.Errorf("Identities (-want +got):\n%s", diff)
	}
}

// TestPrintSummaryModuleFirst checks that a module named first is invoked
// with the method edgemodule serves.
func TestPrintSummaryModuleFirst(t *testing.T) {
	dir := t.TempDir()
	h := startHub(t, Options{Dir: dir, Devices: []string{"dev/mod"}})
	var b strings.Builder
	h.PrintSummary(&b, dir, "dev/mod")
	for _, w := range []string{"/twins/dev/modules/mod/methods", `"methodName":"echo"`} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("summary lacks %q:\n%s", w, b.String())
		}
	}
}

// TestPrintSummaryNoDir checks the commands of a hub that wrote no files:
// they carry the connection string, and a module runs as the sensor.
func TestPrintSummaryNoDir(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev/mod"}})
	var b strings.Builder
	h.PrintSummary(&b, "", "")
	cs, _ := h.ConnectionString("dev/mod")
	for _, w := range []string{
		"IOTHUB_DEVICE_CONNECTION_STRING=" + shellQuote(cs) + " go run ./examples/sensor",
		"CA certificate:           (not written",
		`"methodName":"getReading"`,
	} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("summary lacks %q:\n%s", w, b.String())
		}
	}
	if strings.Contains(b.String(), "edgemodule") {
		t.Errorf("summary runs edgemodule without a workload API:\n%s", b.String())
	}
}
