package localhub

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The methods the examples that PrintSummary's commands start serve: the
// sensor answers getReading, the IoT Edge module echo.
const (
	sensorMethod = "getReading"
	moduleMethod = "echo"
)

// PrintSummary writes what a person needs to use the hub: the listening
// addresses, the connection strings, the command that runs an example as
// each identity (examples/sensor for a device, examples/edgemodule for a
// module when the hub plays the IoT Edge runtime) and a curl command that
// invokes that example's method on the identity first ("" or an unknown
// one picks the first with a key). dir is where WriteConnectionFiles wrote
// the files; "" when it did not, and the commands then carry the
// connection string itself.
func (h *Hub) PrintSummary(w io.Writer, dir, first string) {
	caFile := "(not written: no directory)"
	if dir != "" {
		caFile = filepath.Join(dir, caFileName)
	}
	fmt.Fprintf(w, "Local IoT hub %q is running.\n\n", h.hostName)
	fmt.Fprintf(w, "  MQTT over TLS:            %s\n", h.MQTTAddr())
	fmt.Fprintf(w, "  AMQP over TLS:            %s\n", h.AMQPAddr())
	fmt.Fprintf(w, "  HTTPS (REST, WebSockets): %s  (wss://%s:%d/$iothub/websocket)\n", h.HTTPSAddr(), h.hostName, h.HTTPSPort())
	fmt.Fprintf(w, "  CA certificate:           %s\n", caFile)
	if uri := h.WorkloadURI(); uri != "" {
		fmt.Fprintf(w, "  IoT Edge workload API:    %s\n", uri)
	}
	fmt.Fprintf(w, "\nService connection string:\n  %s\n\n", h.ServiceConnectionString())
	ids := h.Identities()
	if len(ids) == 0 {
		return
	}
	fmt.Fprintf(w, "Device and module connection strings:\n")
	for _, id := range ids {
		cs, _ := h.ConnectionString(id)
		fmt.Fprintf(w, "  %s\n", cs)
	}
	fmt.Fprintf(w, "\nRun an example as each identity (from the repository's root):\n")
	for _, id := range ids {
		fmt.Fprintf(w, "  %s:\n    %s\n", id, h.runCommand(id, dir))
	}
	target := first
	if _, ok := h.reg.lookup(target); !ok {
		target = ids[0]
		for _, id := range ids {
			if i, ok := h.reg.lookup(id); ok && i.key != "" {
				target = id
				break
			}
		}
	}
	method := h.exampleMethod(target, dir)
	fmt.Fprintf(w, "\nWith that running, invoke %q on %s (the token is valid for one hour; `go run ./examples/localhub token` prints a new one):\n\n%s\n\n",
		method, target, h.CurlCommand(target, method, caFile))
}

// runsAsModule reports whether PrintSummary runs identity as an IoT Edge
// module: a module, with the workload API serving and its env file
// written.
func (h *Hub) runsAsModule(identity, dir string) bool {
	return strings.Contains(identity, "/") && dir != "" && h.workload != nil
}

// exampleMethod is the method the example runCommand starts serves.
func (h *Hub) exampleMethod(identity, dir string) string {
	if h.runsAsModule(identity, dir) {
		return moduleMethod
	}
	return sensorMethod
}

// runCommand is the shell command that runs an example as identity
// against this hub over MQTT, with -port when the hub's MQTT port is not
// the standard one. A module runs examples/edgemodule in the environment
// of its env file, as the IoT Edge runtime would start it; anything else
// runs examples/sensor (simulated where the machine has no thermal zone)
// with its connection string read from its file, so the key stays out of
// the command line. The fan example is a module of its own and does not
// run from the repository's root.
func (h *Hub) runCommand(identity, dir string) string {
	port := ""
	if p := h.MQTTPort(); p != 8883 {
		port = " -port " + strconv.Itoa(p)
	}
	if h.runsAsModule(identity, dir) {
		return "(set -a; . " + shellQuote(filepath.Join(dir, EnvFileName(identity))) + "; set +a; go run ./examples/edgemodule" + port + ")"
	}
	cs := ""
	if dir != "" {
		cs = `"$(cat ` + shellQuote(filepath.Join(dir, ConnectionFileName(identity))) + `)"`
	} else {
		s, _ := h.ConnectionString(identity)
		cs = shellQuote(s)
	}
	return "IOTHUB_DEVICE_CONNECTION_STRING=" + cs + " go run ./examples/sensor" +
		" -ca " + shellQuote(filepath.Join(dir, caFileName)) + port
}

// CurlCommand returns a ready-to-paste curl command that invokes method on
// identity through the REST API, trusting the CA file at caFile, with a
// service token valid for an hour. It adds --resolve when the host name
// might not lead to the listener.
func (h *Hub) CurlCommand(identity, method, caFile string) string {
	deviceID, moduleID, _ := strings.Cut(identity, "/")
	path := "/twins/" + url.PathEscape(deviceID)
	if moduleID != "" {
		path += "/modules/" + url.PathEscape(moduleID)
	}
	port := strconv.Itoa(h.HTTPSPort())
	target := "https://" + net.JoinHostPort(h.hostName, port) + path + "/methods?api-version=" + serviceAPIVersion
	var b strings.Builder
	b.WriteString("curl --cacert " + shellQuote(caFile))
	listenIP, _, _ := net.SplitHostPort(h.HTTPSAddr())
	if ip := net.ParseIP(listenIP); ip != nil && ip.IsUnspecified() {
		listenIP = "127.0.0.1"
	}
	if !strings.EqualFold(h.hostName, "localhost") && h.hostName != listenIP {
		b.WriteString(" --resolve " + shellQuote(h.hostName+":"+port+":"+listenIP))
	}
	b.WriteString(" -X POST " + shellQuote(target))
	b.WriteString(" -H " + shellQuote("Authorization: "+h.service.Token(time.Hour)))
	b.WriteString(" -H 'Content-Type: application/json'")
	b.WriteString(" -d " + shellQuote(fmt.Sprintf(`{"methodName":%q,"payload":{},"responseTimeoutInSeconds":30}`, method)))
	return b.String()
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
