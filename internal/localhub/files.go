package localhub

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Identities returns the registered identities ("dev" or "dev/mod"), sorted.
func (h *Hub) Identities() []string {
	var names []string
	for _, id := range h.reg.all() {
		names = append(names, id.name())
	}
	return names
}

// ConnectionFileName is the file WriteConnectionFiles writes an identity's
// connection string to: "dev.txt", or "dev_mod.txt" for a module.
func ConnectionFileName(identity string) string {
	return strings.ReplaceAll(identity, "/", "_") + ".txt"
}

// WriteConnectionFiles writes into dir: ca.pem, service.txt (the service
// connection string), one <identity>.txt per identity, idscope.txt and
// dps.txt (the Device Provisioning Service's ID scope and service
// connection string) and, when the hub serves a workload API, one
// <dev>_<mod>.env per module (see EdgeEnvironment). The files holding
// keys get mode 0600.
func (h *Hub) WriteConnectionFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("localhub: create %s: %w", dir, err)
	}
	if err := writeFileAtomic(filepath.Join(dir, caFileName), h.ca.certPEM, 0o644); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, "service.txt"), []byte(h.ServiceConnectionString()+"\n"), 0o600); err != nil {
		return err
	}
	for _, id := range h.reg.all() {
		cs := h.reg.connectionString(id) + "\n"
		if err := writeFileAtomic(filepath.Join(dir, ConnectionFileName(id.name())), []byte(cs), 0o600); err != nil {
			return err
		}
	}
	if err := h.dps.writeFiles(dir); err != nil {
		return err
	}
	return h.writeEnvFiles(dir)
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

// PrintSummary writes what a person needs to use the hub: listening
// addresses, connection strings, the command that runs a device as each
// identity, and a curl command invoking method on the identity first
// (the first one given to the hub; "" picks the first with a key).
// caFile is where the CA certificate was written.
func (h *Hub) PrintSummary(w io.Writer, caFile, method, first string) {
	fmt.Fprintf(w, "Local IoT hub %q is running.\n\n", h.hostName)
	fmt.Fprintf(w, "  MQTT over TLS:            %s\n", h.MQTTAddr())
	fmt.Fprintf(w, "  AMQP over TLS:            %s\n", h.AMQPAddr())
	fmt.Fprintf(w, "  HTTPS (REST, WebSockets): %s  (wss://%s:%d/$iothub/websocket)\n", h.HTTPSAddr(), h.hostName, h.HTTPSPort())
	fmt.Fprintf(w, "  CA certificate:           %s\n\n", caFile)
	fmt.Fprintf(w, "Service connection string:\n  %s\n\n", h.ServiceConnectionString())
	ids := h.Identities()
	if len(ids) == 0 {
		return
	}
	fmt.Fprintf(w, "Device and module connection strings:\n")
	for _, id := range ids {
		cs, _ := h.ConnectionString(id)
		fmt.Fprintf(w, "  %s\n", cs)
	}
	fmt.Fprintf(w, "\nRun a device (from the repository's root) as:\n")
	for _, id := range ids {
		cs, _ := h.ConnectionString(id)
		fmt.Fprintf(w, "  %s: %s\n", id, h.deviceCommand(cs, caFile))
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
	fmt.Fprintf(w, "\nInvoke %q on %s (the token is valid for one hour):\n\n%s\n\n", method, target, h.CurlCommand(target, method, caFile))
}

// deviceCommand is the command that runs the sensor example (simulated
// where the machine has no thermal zone) as the identity of connection
// string cs against this hub over MQTT, with -port when the hub's MQTT
// port is not the standard one. The fan example is a module of its own
// and does not run from the repository's root.
func (h *Hub) deviceCommand(cs, caFile string) string {
	cmd := "go run ./examples/sensor -connection-string " + shellQuote(cs) + " -ca " + shellQuote(caFile)
	if port := h.MQTTPort(); port != 8883 {
		cmd += " -port " + strconv.Itoa(port)
	}
	return cmd
}
