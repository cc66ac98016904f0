package localhub

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Options configures a Hub. The zero value is a hub for "localhost" on
// free loopback ports that keeps everything in memory.
type Options struct {
	// HostName is the hub's name in connection strings, tokens and its
	// certificate. Default "localhost".
	HostName string
	// ListenAddr is the IP address the listeners bind. Default "127.0.0.1".
	ListenAddr string
	// MQTTPort and HTTPSPort are the ports of MQTT over TLS and of HTTPS
	// (REST and WebSockets); 0 picks a free port.
	MQTTPort, HTTPSPort int
	// AMQPPort is the port of AMQP 1.0 over TLS; 0 picks a free port.
	AMQPPort int
	// Dir, when set, is where the CA, the server certificate and the
	// registry keys are loaded from and saved to, so that connection
	// strings keep working across restarts, and the twins' tags and the
	// jobs (twins.json, jobs.json). Empty keeps everything in memory.
	Dir string
	// WorkloadSocket is the unix socket of the IoT Edge workload API the
	// hub serves for its modules (see EdgeEnvironment). Default: {Dir}/workload.sock
	// when Dir is set, else no workload API.
	WorkloadSocket string
	// Devices are identities to register at start: "dev", or "dev/mod"
	// for a module (its device is registered too).
	Devices []string
	// Logger receives the hub's logs; nil is silent.
	Logger *slog.Logger
	// Tier is the IoT Hub tier whose throttles and job limits the hub
	// enforces (see Tier); the zero Tier enforces none.
	Tier Tier

	// limits bound the HTTPS port's connections; zero fields take the
	// defaults. Tests shorten them.
	limits httpLimits
	// MQTTWriteTimeout is how long a write to an MQTT connection may make
	// no progress before the hub drops the device as one that stopped
	// reading; the requests queued for it are lost with the connection, and
	// their calls end at their response timeout. The hub writes in pieces
	// of at most 16 KiB, each under its own deadline, so a slow link that
	// keeps reading is never cut off. Default 30 s: a link must move 16 KiB
	// in that time, about 4.4 kbit/s, well below the slowest cellular IoT
	// links, and a stalled device holds at most one queue of requests for
	// that long. IoT Hub documents no such value.
	MQTTWriteTimeout time.Duration
	// DPS configures the Device Provisioning Service the hub plays on its
	// listeners (dps.go).
	DPS DPSOptions

	// connectTimeout, when set, replaces defaultConnectTimeout (tests
	// shorten it).
	connectTimeout time.Duration
	// wrapListener, when set, wraps the TCP listener of "mqtt" and "amqp"
	// under TLS (tests inject Accept errors).
	wrapListener func(protocol string, l net.Listener) net.Listener
}

// ListenError reports a port the hub could not bind.
type ListenError struct {
	Listener string // "mqtt", "amqp" or "https"
	Addr     string
	Err      error
}

func (e *ListenError) Error() string {
	return fmt.Sprintf("localhub: listen %s on %s: %v", e.Listener, e.Addr, e.Err)
}

func (e *ListenError) Unwrap() error { return e.Err }

// Hub is a running local IoT hub. Start it with Start and stop it with Close.
type Hub struct {
	log      *slog.Logger
	hostName string
	reg      *registry
	router   *router
	twins    twinStates // model IDs and activity, for the twin APIs
	ca       *keyPair
	caPool   *x509.CertPool
	state    *stateWriter // nil when in memory
	server   *keyPair
	// connectTimeout bounds the wait for an MQTT connection's TLS
	// handshake and CONNECT, and for an AMQP connection's TLS handshake;
	// see defaultConnectTimeout.
	connectTimeout time.Duration
	// writeTimeout is Options.MQTTWriteTimeout or its default.
	writeTimeout time.Duration
	// amqpRIDPrefix starts the uuid correlation id of every AMQP request
	// (see requestCorrelationID); the rest is the request's number on its
	// link pair, so ids repeat across connections as MQTT $rid values do.
	amqpRIDPrefix [8]byte
	// dps is the Device Provisioning Service (dps*.go).
	dps *dps

	mqttListener  net.Listener
	amqpListener  net.Listener
	httpsListener net.Listener
	httpServer    *http.Server
	limits        httpLimits // of the HTTPS port's connections
	service       *ServiceClient
	workload      *workloadServer // nil without a workload API

	// The service side's twins, jobs and throttles (tags.go, jobs.go,
	// throttle.go, persist_service.go).
	tags     *tagStore
	jobs     *jobStore
	throttle *throttles
	files    *serviceFiles // nil when in memory

	// ctx ends when Close starts; sessions and invocations watch it.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	conns  map[io.Closer]struct{}
	wg     sync.WaitGroup // every goroutine of the hub

	closeOnce sync.Once
}

// Start creates or loads the hub's certificates and registry, binds its
// listeners and returns once they are accepting connections. ctx bounds
// only the start; the hub runs until Close.
func Start(ctx context.Context, opts Options) (*Hub, error) {
	if opts.HostName == "" {
		opts.HostName = "localhost"
	}
	if opts.ListenAddr == "" {
		opts.ListenAddr = "127.0.0.1"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h := &Hub{log: log, hostName: opts.HostName, router: newRouter(), limits: opts.limits.withDefaults(), conns: map[io.Closer]struct{}{}}
	h.connectTimeout = cmp.Or(opts.connectTimeout, defaultConnectTimeout)
	h.writeTimeout = cmp.Or(opts.MQTTWriteTimeout, defaultMQTTWriteTimeout)
	_, _ = rand.Read(h.amqpRIDPrefix[:]) // crypto/rand.Read never fails
	if err := h.loadOrCreate(opts.Dir); err != nil {
		return nil, err
	}
	if err := h.initService(opts.Dir, opts.Tier); err != nil {
		return nil, err
	}
	for _, name := range opts.Devices {
		if err := h.addIdentity(name); err != nil {
			return nil, err
		}
	}
	if err := h.save(); err != nil {
		return nil, err
	}
	if err := h.initDPS(opts); err != nil {
		return nil, err
	}
	if err := h.listen(opts); err != nil {
		return nil, err
	}
	if err := h.listenWorkload(opts); err != nil {
		h.mqttListener.Close()
		h.amqpListener.Close()
		h.httpsListener.Close()
		return nil, err
	}
	service, err := NewServiceClient("https://"+h.HTTPSAddr(), h.ServiceConnectionString(), h.caPool)
	if err != nil {
		h.mqttListener.Close()
		h.amqpListener.Close()
		h.httpsListener.Close()
		h.closeWorkload()
		return nil, err
	}
	h.service = service
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.serve()
	h.serveWorkload()
	h.startService()
	log.Info("localhub: started", "host", h.hostName, "mqtt", h.MQTTAddr(), "amqp", h.AMQPAddr(), "https", h.HTTPSAddr())
	return h, nil
}

// addIdentity registers "dev" or "dev/mod" (and the module's device).
func (h *Hub) addIdentity(name string) error {
	deviceID, moduleID, err := splitIdentity(name)
	if err != nil {
		return err
	}
	if _, err := h.reg.addKeyIdentity(deviceID, ""); err != nil && (moduleID == "" || !errors.Is(err, ErrIdentityExists)) {
		return err
	}
	if moduleID != "" {
		if _, err := h.reg.addKeyIdentity(deviceID, moduleID); err != nil {
			return err
		}
	}
	return nil
}

// listen binds the MQTT, AMQP and HTTPS listeners with TLS.
func (h *Hub) listen(opts Options) error {
	server := h.server.tlsCertificate()
	mqttTLS := &tls.Config{
		Certificates: []tls.Certificate{server},
		// Requested, not verified: X.509 devices are self-signed and
		// identified by thumbprint.
		ClientAuth: tls.RequestClientCert,
		MinVersion: tls.VersionTLS12,
	}
	httpsTLS := mqttTLS.Clone()
	httpsTLS.NextProtos = []string{"http/1.1"} // WebSockets need HTTP/1.1

	mqttAddr := net.JoinHostPort(opts.ListenAddr, strconv.Itoa(opts.MQTTPort))
	ml, err := net.Listen("tcp", mqttAddr)
	if err != nil {
		return &ListenError{Listener: "mqtt", Addr: mqttAddr, Err: err}
	}
	amqpAddr := net.JoinHostPort(opts.ListenAddr, strconv.Itoa(opts.AMQPPort))
	al, err := net.Listen("tcp", amqpAddr)
	if err != nil {
		ml.Close()
		return &ListenError{Listener: "amqp", Addr: amqpAddr, Err: err}
	}
	httpsAddr := net.JoinHostPort(opts.ListenAddr, strconv.Itoa(opts.HTTPSPort))
	hl, err := net.Listen("tcp", httpsAddr)
	if err != nil {
		ml.Close()
		al.Close()
		return &ListenError{Listener: "https", Addr: httpsAddr, Err: err}
	}
	if opts.wrapListener != nil {
		ml, al = opts.wrapListener("mqtt", ml), opts.wrapListener("amqp", al)
	}
	h.mqttListener = tls.NewListener(ml, mqttTLS)
	// AMQP shares the server certificate and client-certificate policy.
	h.amqpListener = tls.NewListener(al, mqttTLS.Clone())
	// The guard sits under TLS, so its bound covers the handshake.
	h.httpsListener = tls.NewListener(&guardedListener{Listener: hl, limit: h.limits.unauthenticated}, httpsTLS)
	return nil
}

// serve starts the accept loops. The HTTPS server has no ReadTimeout or
// WriteTimeout: they would cut the long-lived WebSocket connections of
// devices. Its connections are bounded by the guard (until a request
// authenticates), per-request deadlines and the idle limit instead.
func (h *Hub) serve() {
	h.httpServer = &http.Server{
		Handler:           h.httpHandler(),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       h.limits.idle,
		ErrorLog:          slog.NewLogLogger(h.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return h.ctx },
		ConnContext:       withGuard,
	}
	h.wg.Add(3)
	go func() { // owned by the hub: ends when Close closes the listener; joined in Close
		defer h.wg.Done()
		h.acceptLoop("mqtt", h.mqttListener, h.startMQTT)
	}()
	go func() { // owned by the hub: ends when Close closes the listener; joined in Close
		defer h.wg.Done()
		h.acceptLoop("amqp", h.amqpListener, h.startAMQP)
	}()
	go func() { // owned by the hub: ends when Close closes the server; joined in Close
		defer h.wg.Done()
		_ = h.httpServer.Serve(h.httpsListener)
	}()
}

// track registers a connection to close on shutdown and counts its
// goroutine; it reports false once the hub is closing.
func (h *Hub) track(c io.Closer) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.conns[c] = struct{}{}
	h.wg.Add(1)
	return true
}

func (h *Hub) untrack(c io.Closer) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
	h.wg.Done()
}

// Close stops the listeners, closes every connection, fails pending
// invocations and waits for all the hub's goroutines. It is idempotent.
func (h *Hub) Close() error {
	h.closeOnce.Do(func() {
		h.mu.Lock()
		h.closed = true
		conns := make([]io.Closer, 0, len(h.conns))
		for c := range h.conns {
			conns = append(conns, c)
		}
		h.mu.Unlock()
		h.cancel()
		_ = h.mqttListener.Close()
		_ = h.amqpListener.Close()
		_ = h.httpServer.Close()
		h.closeWorkload()
		for _, c := range conns {
			_ = c.Close()
		}
		h.wg.Wait()
		h.closeService()
		h.service.closeIdleConnections()
		h.log.Info("localhub: stopped")
	})
	return nil
}

// HostName returns the hub's host name.
func (h *Hub) HostName() string { return h.hostName }

// MQTTAddr returns the MQTT listener's address, such as "127.0.0.1:8883".
func (h *Hub) MQTTAddr() string { return h.mqttListener.Addr().String() }

// AMQPAddr returns the AMQP listener's address, such as "127.0.0.1:5671".
func (h *Hub) AMQPAddr() string { return h.amqpListener.Addr().String() }

// HTTPSAddr returns the HTTPS listener's address.
func (h *Hub) HTTPSAddr() string { return h.httpsListener.Addr().String() }

// MQTTPort returns the MQTT listener's port.
func (h *Hub) MQTTPort() int { return port(h.mqttListener.Addr()) }

// AMQPPort returns the AMQP listener's port.
func (h *Hub) AMQPPort() int { return port(h.amqpListener.Addr()) }

// HTTPSPort returns the HTTPS listener's port.
func (h *Hub) HTTPSPort() int { return port(h.httpsListener.Addr()) }

func port(a net.Addr) int {
	if tcp, ok := a.(*net.TCPAddr); ok {
		return tcp.Port
	}
	return 0
}

// CACertPEM returns the PEM of the CA that signed the hub's certificate.
func (h *Hub) CACertPEM() []byte { return append([]byte(nil), h.ca.certPEM...) }

// CertPool returns a pool trusting the hub's CA.
func (h *Hub) CertPool() *x509.CertPool { return h.caPool.Clone() }

// AddDevice registers a device with a symmetric key, or keeps the existing
// one, and returns its connection string.
func (h *Hub) AddDevice(deviceID string) (string, error) {
	id, err := h.reg.addKeyIdentity(deviceID, "")
	if err != nil {
		return "", err
	}
	return h.reg.connectionString(id), nil
}

// AddModule registers a module of an existing device with a symmetric key,
// or keeps the existing one, and returns its connection string.
func (h *Hub) AddModule(deviceID, moduleID string) (string, error) {
	if moduleID == "" {
		return "", fmt.Errorf("localhub: empty module id")
	}
	id, err := h.reg.addKeyIdentity(deviceID, moduleID)
	if err != nil {
		return "", err
	}
	return h.reg.connectionString(id), nil
}

// AddX509Device registers a device authenticated by a new self-signed
// client certificate (by its SHA-256 thumbprint) and returns the
// certificate with its key; for an existing X.509 device it returns the
// registered certificate again.
func (h *Hub) AddX509Device(deviceID string) (tls.Certificate, error) {
	id, err := h.reg.addX509Device(deviceID)
	if err != nil {
		return tls.Certificate{}, err
	}
	kp, err := parseKeyPair(id.certPEM, id.keyPEM)
	if err != nil {
		return tls.Certificate{}, err
	}
	return kp.tlsCertificate(), nil
}

// SetParent makes the device leafID a leaf device of the IoT Edge device
// parentID (IoT Hub's device scope): the modules of parentID may then call
// its methods through the edge hub, which reaches no other device.
func (h *Hub) SetParent(leafID, parentID string) error { return h.reg.setParent(leafID, parentID) }

// ConnectionString returns the connection string of "dev" or "dev/mod";
// for an X.509 device it is "HostName=…;DeviceId=…;x509=true".
func (h *Hub) ConnectionString(identity string) (string, error) {
	id, ok := h.reg.lookup(identity)
	if !ok {
		return "", fmt.Errorf("%w: %q", ErrUnknownIdentity, identity)
	}
	return h.reg.connectionString(id), nil
}

// ServiceConnectionString returns the iothubowner policy's connection string.
func (h *Hub) ServiceConnectionString() string { return h.reg.serviceConnectionString() }

// Disconnect drops the live connections of "dev" or "dev/mod", as the real
// hub sometimes does, and returns how many it dropped.
func (h *Hub) Disconnect(identity string) int { return h.router.disconnect(identity) }

// WaitSubscribed waits until identity is connected and subscribed to
// method requests, or ctx is done.
func (h *Hub) WaitSubscribed(ctx context.Context, identity string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(h.ctx, cancel)
	defer stop()
	_, _, err := h.router.waitReady(ctx, identity, time.Time{}, false)
	if err != nil {
		return fmt.Errorf("localhub: wait for %q to subscribe: %w", identity, err)
	}
	return nil
}

// WaitOffline waits until the hub no longer routes methods to identity:
// it has seen the device's connection (or its method subscription or
// links) go. It fails when ctx ends first.
func (h *Hub) WaitOffline(ctx context.Context, identity string) error {
	if err := h.router.waitOffline(ctx, identity); err != nil {
		return fmt.Errorf("localhub: wait for %q to go offline: %w", identity, err)
	}
	return nil
}

// WaitCallsWaiting waits until at least n method calls are waiting for
// identity to connect and subscribe (within their connect timeout), or ctx
// ends. Tests use it to order a call before a device's reconnection.
func (h *Hub) WaitCallsWaiting(ctx context.Context, identity string, n int) error {
	return h.router.waitCallsWaiting(ctx, identity, n)
}

// DetachMethodLink detaches the request link of identity's AMQP method
// channel, as the hub may when it recycles links; the paired response link
// is detached with it, and the device must attach both again. It reports
// whether the identity had AMQP method links (MQTT sessions have none).
func (h *Hub) DetachMethodLink(identity string) bool {
	ch, ok := h.router.live(identity).(*methodChannel)
	if !ok {
		return false
	}
	ch.detachRequestLink("detached by the hub")
	return true
}

// ServiceClient returns a REST client for this hub, authenticated as
// iothubowner and trusting the hub's CA.
func (h *Hub) ServiceClient() *ServiceClient { return h.service }
