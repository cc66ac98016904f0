package localhub

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// DPSOptions configures the Device Provisioning Service the hub plays
// beside IoT Hub (see the package documentation). The zero value is DPS's
// own behaviour.
type DPSOptions struct {
	// RetryAfter is the retry-after of DPS's 202 answers, and how long an
	// assignment takes: a poll that comes sooner is answered 202 again. It
	// goes on the wire in whole seconds, rounded up, at least one. Default
	// 3 s, what DPS sends ("$dps/registrations/res/202/?$rid=1&retry-after=3",
	// azure-iot-sdk-csharp, ProvisioningTransportHandlerMqtt.cs).
	RetryAfter time.Duration
	// RegistrationsPerMinute bounds registration requests; beyond it they
	// are answered 429 with a retry-after. Default 200, DPS's limit of
	// device registrations per minute and service unit ("Quotas and
	// limits", learn.microsoft.com/azure/iot-dps/about-iot-dps). Negative:
	// no limit.
	RegistrationsPerMinute int
}

// Defaults of DPSOptions.
const (
	defaultDPSRetryAfter             = 3 * time.Second
	defaultDPSRegistrationsPerMinute = 200
)

// DPSServicePolicy is the name of the Device Provisioning Service's only
// shared access policy, with every permission on its service API.
const DPSServicePolicy = "provisioningserviceowner"

// dpsAnswer is the answer to a request of the Device Provisioning
// Service, whatever carries it.
type dpsAnswer struct {
	status     int
	body       []byte
	retryAfter time.Duration // positive: a retry-after, in whole seconds
	trackingID string        // of an error, for the x-ms-request-id header
}

// dps is the hub's Device Provisioning Service: its ID scope and service
// key, enrollments, registration records and registration operations. It
// is safe for concurrent use; its methods never hold its lock across I/O
// (the registry, a webhook, the state file).
type dps struct {
	hostName   string // of the DPS endpoints, the service API and the one linked hub
	log        *slog.Logger
	reg        *registry
	retryAfter time.Duration
	limit      *dpsRateLimiter // nil: no limit
	webhooks   *http.Client    // calls custom allocation webhooks
	file       *dpsStateFile   // nil when in memory

	mu              sync.Mutex
	idScope         string
	serviceKey      string // base64 key of DPSServicePolicy
	operationPrefix string // "4.{16 hex digits}", the start of every operation id
	enrollments     map[string]*enrollment
	groups          map[string]*enrollment
	registrations   map[string]*registrationRecord
	operations      map[string]*operation
	started         chan struct{} // closed and replaced each time an operation is stored; see WaitRegistrationStarted
}

// initDPS creates the hub's DPS, or loads it from dir, and writes
// idscope.txt and dps.txt there.
func (h *Hub) initDPS(opts Options) error {
	d := &dps{
		hostName:      h.hostName,
		log:           h.log.With("service", "dps"),
		reg:           h.reg,
		retryAfter:    wholeSeconds(cmp.Or(opts.DPS.RetryAfter, defaultDPSRetryAfter)),
		webhooks:      newWebhookClient(h.ca.certPEM),
		enrollments:   map[string]*enrollment{},
		groups:        map[string]*enrollment{},
		registrations: map[string]*registrationRecord{},
		operations:    map[string]*operation{},
		started:       make(chan struct{}),
	}
	if rate := cmp.Or(opts.DPS.RegistrationsPerMinute, defaultDPSRegistrationsPerMinute); rate > 0 {
		d.limit = newDPSRateLimiter(rate)
	}
	if opts.Dir != "" {
		d.file = &dpsStateFile{dir: opts.Dir}
		st, err := d.file.load()
		if err != nil {
			return err
		}
		if st != nil {
			if err := d.restore(st); err != nil {
				return err
			}
		}
	}
	if d.idScope == "" {
		d.idScope, d.serviceKey, d.operationPrefix = newIDScope(), newKey(), newOperationPrefix()
		if err := d.save(); err != nil {
			return err
		}
	}
	if opts.Dir != "" {
		if err := d.writeFiles(opts.Dir); err != nil {
			return err
		}
	}
	h.dps = d
	return nil
}

// wholeSeconds rounds d up to whole seconds, at least one: a retry-after
// on the wire.
func wholeSeconds(d time.Duration) time.Duration {
	return max(time.Second, (d+time.Second-1)/time.Second*time.Second)
}

// newIDScope returns a new ID scope of the form DPS gives: "0ne" and eight
// upper-case hex digits, such as "0ne00055500" (MicrosoftDocs/azure-docs
// issue #43157).
func newIDScope() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "0ne" + strings.ToUpper(hex.EncodeToString(b[:]))
}

// newOperationPrefix returns the start of a DPS's operation ids: in
// "4.0bdadb0c47c2d6b4.4a081f01-f5f2-4d1c-87c5-af533f1a3958"
// (Azure/azure-iot-sdk-node issue #721), "4." and 16 hex digits that stay
// the same for one DPS.
func newOperationPrefix() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "4." + hex.EncodeToString(b[:])
}

// scope returns the ID scope.
func (d *dps) scope() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.idScope
}

// connectionString returns the service connection string of
// DPSServicePolicy.
func (d *dps) connectionString() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return fmt.Sprintf("HostName=%s;SharedAccessKeyName=%s;SharedAccessKey=%s", d.hostName, DPSServicePolicy, d.serviceKey)
}

// WaitRegistrationStarted waits until DPS has stored a registration
// operation of registrationID (and saved it, with a state directory), or
// ctx ends. Tests use it to act between a registration and its poll.
func (h *Hub) WaitRegistrationStarted(ctx context.Context, registrationID string) error {
	d := h.dps
	for {
		d.mu.Lock()
		for _, op := range d.operations {
			if strings.EqualFold(op.RegistrationID, registrationID) {
				d.mu.Unlock()
				return nil
			}
		}
		started := d.started
		d.mu.Unlock()
		select {
		case <-started:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// IDScope returns the ID scope of the hub's Device Provisioning Service,
// which devices present to register. It stays the same across restarts
// with Options.Dir.
func (h *Hub) IDScope() string { return h.dps.scope() }

// DPSConnectionString returns the service connection string of the hub's
// Device Provisioning Service, for the provisioning service SDKs:
// "HostName={host};SharedAccessKeyName=provisioningserviceowner;SharedAccessKey=…".
func (h *Hub) DPSConnectionString() string { return h.dps.connectionString() }
