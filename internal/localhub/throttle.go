package localhub

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Tiers and their limits, from "IoT Hub quotas and throttling"
// (learn.microsoft.com, azure/iot-hub/iot-hub-devguide-quotas-throttling),
// its "Operation throttles" table (columns "Free, B1, and S1", "B2 and
// S2", "B3 and S3") and "Other limits" (maximum concurrent jobs), and the
// units each tier allows from "Choose the right IoT Hub tier"
// (iot-hub-scaling: "up to 200 units for the B1, B2, S1, or S2 edition, or
// up to 10 units for the B3 or S3 edition"; a free hub has one).
//
// How the hub applies them (throttle_shaper.go):
//   - Operation throttles "are rate limitations that are applied in minute
//     ranges" and "subject to traffic shaping". Each is a budget of one
//     minute's worth of its rate, used at will; beyond it, requests wait
//     their turn in a backlog served at the rate (traffic shaping: the
//     latency rises), and a request that would wait more than a minute is
//     refused with 429001 ThrottlingException. The documented example, 200
//     device-to-cloud sends per second against a limit of 100, is then
//     served at once "for the first minute or two", shaped after that, and
//     refused once the backlog is full. IoT Hub publishes neither the
//     budget nor the backlog; these are this hub's reading of the page.
//   - Direct methods are metered in 4 KB steps of their payload ("If your
//     direct call's payload is between 0 and 4 KB, it is counted as 4 KB").
//   - Jobs device operations are paced, one at a time at the rate, and
//     never refused.
//   - Beyond the tier's concurrent jobs, a new job is refused with 429004.
// The zero Tier sets no limits at all.

// Tier is an IoT Hub tier (SKU) and its number of units.
type Tier struct {
	// SKU is "F1", "S1", "S2" or "S3"; "" sets no limits.
	SKU string
	// Units is the number of units, 1 to 200 (F1: 1; S3: up to 10).
	Units int
}

// ErrInvalidTier is wrapped by the errors of ParseTier and Start about a
// tier that does not exist.
var ErrInvalidTier = errors.New("localhub: invalid tier")

// maxUnits is the number of units each SKU allows.
var maxUnits = map[string]int{"F1": 1, "S1": 200, "S2": 200, "S3": 10}

// ParseTier reads a -sku flag ("F1", "S1", "S2", "S3", or "none" for no
// limits; case-insensitive) and a number of units.
func ParseTier(sku string, units int) (Tier, error) {
	sku = strings.ToUpper(strings.TrimSpace(sku))
	if sku == "NONE" || sku == "" {
		return Tier{}, nil
	}
	t := Tier{SKU: sku, Units: units}
	return t, t.validate()
}

func (t Tier) validate() error {
	if t.SKU == "" {
		return nil
	}
	most, ok := maxUnits[t.SKU]
	switch {
	case !ok:
		return fmt.Errorf("%w: SKU %q is not F1, S1, S2 or S3", ErrInvalidTier, t.SKU)
	case most == 1 && t.Units != 1:
		return fmt.Errorf("%w: %s has exactly 1 unit, not %d", ErrInvalidTier, t.SKU, t.Units)
	case t.Units < 1 || t.Units > most:
		return fmt.Errorf("%w: %s takes 1 to %d units, not %d", ErrInvalidTier, t.SKU, most, t.Units)
	}
	return nil
}

// String is "S1×2", or "no limits" for the zero Tier.
func (t Tier) String() string {
	if t.SKU == "" {
		return "no limits"
	}
	return fmt.Sprintf("%s×%d", t.SKU, t.Units)
}

// methodMeterBytes is the size of a direct method's metering step.
const methodMeterBytes = 4 * 1024

// methodMeters is the number of 4 KB steps a payload of n bytes counts
// for: at least one.
func methodMeters(n int) float64 { return float64(max(1, (n+methodMeterBytes-1)/methodMeterBytes)) }

// tierRates are a tier's limits for the whole hub, per second.
type tierRates struct {
	methods       float64 // 4 KB meters
	queries       float64
	twinReads     float64
	twinUpdates   float64
	jobsOps       float64 // create, cancel, list
	jobDeviceOps  float64
	maxActiveJobs int
}

// rates returns the tier's limits with its units.
func (t Tier) rates() tierRates {
	u := float64(t.Units)
	const kb = 1024.0 / methodMeterBytes // meters per KB/s
	switch t.SKU {
	case "S2":
		return tierRates{methods: 480 * kb * u, queries: 20 * u / 60, twinReads: math.Max(100, 10*u),
			twinUpdates: math.Max(50, 5*u), jobsOps: 100 * u / 60, jobDeviceOps: math.Max(10, u), maxActiveJobs: 5}
	case "S3":
		return tierRates{methods: 24 * 1024 * kb * u, queries: 1000 * u / 60, twinReads: 500 * u,
			twinUpdates: 250 * u, jobsOps: 5000 * u / 60, jobDeviceOps: 50 * u, maxActiveJobs: 10}
	}
	// F1 and S1 ("Free, B1, and S1").
	return tierRates{methods: 160 * kb * u, queries: 20 * u / 60, twinReads: 100,
		twinUpdates: 50, jobsOps: 100 * u / 60, jobDeviceOps: 10, maxActiveJobs: 1}
}

// Shaping of the operation throttles: a budget of shapingBudget of the
// rate, and a backlog of at most shapingBacklog of waiting and
// maxBacklogRequests requests.
const (
	shapingBudget      = time.Minute
	shapingBacklog     = time.Minute
	maxBacklogRequests = 10000
)

// throttles are the hub's limits; every field is nil, and maxActiveJobs 0,
// for a hub without a tier.
type throttles struct {
	methods, queries, twinReads, twinUpdates, jobsOps *shaper
	jobDeviceOps                                      *shaper
	maxActiveJobs                                     int
}

// newThrottles returns the limits of tier t.
func newThrottles(t Tier) *throttles {
	if t.SKU == "" {
		return &throttles{}
	}
	r := t.rates()
	shaped := func(rate float64) *shaper {
		return newShaper(rate, rate*shapingBudget.Seconds(), shapingBacklog, maxBacklogRequests)
	}
	return &throttles{
		methods: shaped(r.methods), queries: shaped(r.queries), twinReads: shaped(r.twinReads),
		twinUpdates: shaped(r.twinUpdates), jobsOps: shaped(r.jobsOps),
		// One operation at a time, waiting as long as it takes.
		jobDeviceOps:  newShaper(r.jobDeviceOps, 1, 0, 0),
		maxActiveJobs: r.maxActiveJobs,
	}
}
