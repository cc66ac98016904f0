package localhub

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// WorkloadSocketName is the workload API's socket in Options.Dir.
const WorkloadSocketName = "workload.sock"

// workloadAPIVersions are the workload API versions the hub serves, as
// the IoT Edge runtime describes them (Azure/iotedge
// edgelet/api/workloadVersion_2018_06_28.yaml, _2019_01_30, _2020_07_07):
// the azure-iot-sdk-node module client sends 2018-06-28
// (iotedge_authentication_provider.ts), and the env files give 2019-01-30.
// Others are refused with 400.
var workloadAPIVersions = []string{"2018-06-28", "2019-01-30", "2020-07-07"}

// maxWorkloadBody bounds a sign request: the data is a short string to sign.
const maxWorkloadBody = 64 << 10

// workloadServer is the hub's IoT Edge workload API on a unix socket.
type workloadServer struct {
	path     string // absolute
	listener net.Listener
	server   *http.Server
}

// workloadSocketPath returns where the workload API listens: the option,
// else {Dir}/workload.sock; "" when neither is set.
func workloadSocketPath(opts Options) string {
	switch {
	case opts.WorkloadSocket != "":
		return opts.WorkloadSocket
	case opts.Dir != "":
		return filepath.Join(opts.Dir, WorkloadSocketName)
	}
	return ""
}

// listenWorkload binds the workload API's unix socket, replacing a socket
// left by an earlier run; it does nothing without a socket path.
func (h *Hub) listenWorkload(opts Options) error {
	path := workloadSocketPath(opts)
	if path == "" {
		return nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return &ListenError{Listener: "workload", Addr: path, Err: err}
	}
	if fi, err := os.Lstat(abs); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return &ListenError{Listener: "workload", Addr: abs, Err: errors.New("the path exists and is not a socket")}
		}
		_ = os.Remove(abs) // a stale socket: nothing listens on it any more, or Listen fails below
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return &ListenError{Listener: "workload", Addr: abs, Err: err}
	}
	l, err := net.Listen("unix", abs)
	if err != nil {
		return &ListenError{Listener: "workload", Addr: abs, Err: err}
	}
	// The socket signs tokens with every module's key: only its owner may
	// use it. (The IoT Edge runtime tells modules apart by their process;
	// the hub cannot, and signs for any module whose generation id the
	// caller names.)
	if err := os.Chmod(abs, 0o600); err != nil {
		l.Close()
		return &ListenError{Listener: "workload", Addr: abs, Err: err}
	}
	h.workload = &workloadServer{path: abs, listener: l}
	return nil
}

// serveWorkload starts the workload API's server, if it listens.
func (h *Hub) serveWorkload() {
	w := h.workload
	if w == nil {
		return
	}
	w.server = &http.Server{
		Handler:           h.workloadHandler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readHeaderTimeout,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(h.log.Handler(), slog.LevelDebug),
	}
	h.wg.Add(1)
	go func() { // owned by the hub: ends when Close closes the server; joined in Close
		defer h.wg.Done()
		_ = w.server.Serve(w.listener)
	}()
}

// closeWorkload stops the workload API; the socket file goes with its
// listener.
func (h *Hub) closeWorkload() {
	if w := h.workload; w != nil {
		if w.server != nil {
			_ = w.server.Close()
		} else {
			_ = w.listener.Close()
		}
	}
}

// WorkloadURI returns the workload API's URI, "unix:///…/workload.sock",
// or "" when the hub serves none.
func (h *Hub) WorkloadURI() string {
	if h.workload == nil {
		return ""
	}
	return "unix://" + h.workload.path
}

// workloadHandler serves the sign and trust-bundle calls (Azure/iotedge
// edgelet/api/workloadVersion_2019_01_30.yaml). Errors are
// {"message":"…"}, as the runtime writes them.
func (h *Hub) workloadHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /trust-bundle", func(w http.ResponseWriter, r *http.Request) {
		if !checkWorkloadVersion(w, r) {
			return
		}
		writeWorkloadJSON(w, http.StatusOK, map[string]string{"certificate": string(h.ca.certPEM)})
	})
	mux.HandleFunc("POST /modules/{module}/genid/{genid}/sign", h.serveWorkloadSign)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeWorkloadError(w, http.StatusNotFound, "no such workload API call: "+clip(r.Method+" "+r.URL.Path))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.enter() {
			writeWorkloadError(w, http.StatusServiceUnavailable, "the hub is closing")
			return
		}
		defer h.wg.Done()
		mux.ServeHTTP(w, r)
	})
}

// checkWorkloadVersion answers 400 unless api-version is one the hub serves.
func checkWorkloadVersion(w http.ResponseWriter, r *http.Request) bool {
	v := r.URL.Query()["api-version"]
	if len(v) == 1 && slices.Contains(workloadAPIVersions, v[0]) {
		return true
	}
	writeWorkloadError(w, http.StatusBadRequest, fmt.Sprintf("the api-version must be one of %s", strings.Join(workloadAPIVersions, ", ")))
	return false
}

// serveWorkloadSign signs the request's data with the primary key of the
// module named by its id and generation id.
func (h *Hub) serveWorkloadSign(w http.ResponseWriter, r *http.Request) {
	if !checkWorkloadVersion(w, r) {
		return
	}
	var req struct {
		KeyID string `json:"keyId"`
		Algo  string `json:"algo"`
		Data  string `json:"data"`
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWorkloadBody))
	if err != nil || json.Unmarshal(body, &req) != nil {
		writeWorkloadError(w, http.StatusBadRequest, "the body is not a sign request")
		return
	}
	data, err := base64.StdEncoding.DecodeString(req.Data)
	switch {
	case req.KeyID != "primary":
		writeWorkloadError(w, http.StatusBadRequest, "keyId must be primary")
		return
	case req.Algo != "HMACSHA256":
		writeWorkloadError(w, http.StatusBadRequest, "algo must be HMACSHA256")
		return
	case err != nil:
		writeWorkloadError(w, http.StatusBadRequest, "data is not base64")
		return
	}
	moduleID, genID := r.PathValue("module"), r.PathValue("genid")
	id := h.moduleByGeneration(moduleID, genID)
	if id == nil {
		h.log.Warn("workload: sign refused: no such module generation", "module_id", moduleID)
		writeWorkloadError(w, http.StatusNotFound, fmt.Sprintf("Module not found: %s at generation %s", clip(moduleID), clip(genID)))
		return
	}
	key, err := base64.StdEncoding.DecodeString(id.key)
	if err != nil {
		writeWorkloadError(w, http.StatusInternalServerError, "the module's key is unusable")
		return
	}
	m := hmac.New(sha256.New, key)
	m.Write(data)
	h.log.Debug("workload: signed", "identity", id.name())
	writeWorkloadJSON(w, http.StatusOK, map[string]string{"digest": base64.StdEncoding.EncodeToString(m.Sum(nil))})
}

// moduleByGeneration returns the key-authenticated module moduleID whose
// generation id is genID, or nil. The generation id tells apart modules of
// the same name on different devices, as only one device's modules share
// a real runtime.
func (h *Hub) moduleByGeneration(moduleID, genID string) *identity {
	for _, id := range h.reg.all() {
		if id.moduleID == moduleID && id.key != "" && generationID(id) == genID {
			return id
		}
	}
	return nil
}

// generationID is the module's generation id: derived from its identity
// and key, so it is stable across restarts and changes when the module is
// registered anew, as IoT Hub's does when a module is recreated.
func generationID(id *identity) string {
	sum := sha256.Sum256([]byte("localhub generation\n" + id.name() + "\n" + id.key))
	return hex.EncodeToString(sum[:8])
}

func writeWorkloadJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeWorkloadError(w http.ResponseWriter, status int, message string) {
	writeWorkloadJSON(w, status, map[string]string{"message": message})
}
