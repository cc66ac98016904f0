package bench

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/directmethods/iotdevice/internal/faultproxy"
)

// Kinds of faults, as the soak report counts them. Black holes and stalls
// also say their direction: "/up" (device to hub), "/down" or "/both".
const (
	FaultReset          = "reset"            // every connection of the device's proxy is reset
	FaultBlackHoleShort = "black-hole-short" // nothing crosses for 0.2–0.8 keep-alives, then everything held flows
	FaultBlackHoleLong  = "black-hole-long"  // the same for 1.5–3 keep-alives: the client must notice
	FaultStall          = "stall"            // a black hole that ends by itself, after 0.2–2 keep-alives
	FaultSlowLink       = "slow-link"        // bandwidth, latency and small buffers for 2–6 keep-alives
	FaultHubRestart     = "hub-restart"      // the hub stops and starts again on the same ports and state
)

// slowLinkBandwidths are the rates a slow link is given, in bytes per
// second, from a slow cellular uplink to a modest DSL line; slowLinkLatencies
// its one-way delays; slowLinkBuffer the small queue a slow path has.
var (
	slowLinkBandwidths = []int{32 << 10, 128 << 10, 1 << 20}
	slowLinkLatencies  = []time.Duration{0, 20 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond}
)

const slowLinkBuffer = 32 << 10

// fault is one fault on a device's proxy, drawn by pickFault.
type fault struct {
	kind      string // one of the Fault constants
	dir       faultproxy.Direction
	lasts     time.Duration
	bandwidth int           // slow link: bytes per second in dir
	latency   time.Duration // slow link: one-way, in both directions
	buffer    int           // slow link: the path's buffer in dir; 0 keeps the proxy's default
}

// pickFault draws a fault, its direction and its length, scaled to the
// clients' keep-alive: a black hole shorter than the keep-alive should
// cost nothing, a longer one must be noticed.
func pickFault(rng *rand.Rand, keepAlive time.Duration) fault {
	between := func(lo, hi float64) time.Duration {
		return time.Duration((lo + rng.Float64()*(hi-lo)) * float64(keepAlive))
	}
	dirs := []faultproxy.Direction{faultproxy.ToTarget, faultproxy.ToClient, faultproxy.Both}
	f := fault{dir: dirs[rng.IntN(len(dirs))]}
	switch r := rng.IntN(100); {
	case r < 20:
		f.kind = FaultReset
	case r < 35:
		f.kind, f.lasts = FaultBlackHoleShort, between(0.2, 0.8)
	case r < 50:
		f.kind, f.lasts = FaultBlackHoleLong, between(1.5, 3)
	case r < 65:
		f.kind, f.lasts = FaultStall, between(0.2, 2)
	default:
		f.kind, f.lasts = FaultSlowLink, between(2, 6)
		f.bandwidth = slowLinkBandwidths[rng.IntN(len(slowLinkBandwidths))]
		f.latency = slowLinkLatencies[rng.IntN(len(slowLinkLatencies))]
		if rng.IntN(2) == 0 {
			f.buffer = slowLinkBuffer
		}
	}
	return f
}

// name is f's name in the report: its kind, and for black holes and
// stalls its direction.
func (f fault) name() string {
	switch f.kind {
	case FaultReset, FaultSlowLink:
		return f.kind
	}
	return f.kind + "/" + dirName(f.dir)
}

// dirName names a direction from the device's side.
func dirName(d faultproxy.Direction) string {
	switch d {
	case faultproxy.ToTarget:
		return "up"
	case faultproxy.ToClient:
		return "down"
	}
	return "both"
}

// apply starts f on p.
func (f fault) apply(p *faultproxy.Proxy) {
	switch f.kind {
	case FaultReset:
		p.Reset()
	case FaultSlowLink:
		p.SetBandwidth(f.dir, f.bandwidth)
		p.SetOneWayLatency(faultproxy.Both, f.latency)
		p.SetBuffer(f.dir, f.buffer)
	case FaultStall:
		p.Stall(f.dir, f.lasts)
	default:
		p.BlackHole(f.dir)
	}
}

// clearFaults ends every fault on p: held bytes flow on, the link is
// unshaped.
func clearFaults(p *faultproxy.Proxy) {
	p.Restore()
	p.SetBandwidth(faultproxy.Both, 0)
	p.SetLatency(0)
	p.SetBuffer(faultproxy.Both, 0)
}

// spread returns a duration drawn uniformly from half to one and a half
// times mean.
func spread(rng *rand.Rand, mean time.Duration) time.Duration {
	return time.Duration((0.5 + rng.Float64()) * float64(mean))
}

// faultLoop injects faults into d's proxy one after the other, with
// pauses of about FaultGap between them, until ctx ends; it leaves the
// proxy without faults.
func (s *soak) faultLoop(ctx context.Context, d *soakDevice, rng *rand.Rand) {
	defer clearFaults(d.proxy)
	for pause(ctx, nil, spread(rng, s.cfg.FaultGap)) {
		f := pickFault(rng, s.cfg.KeepAlive)
		s.counters.fault(f.name())
		s.log.Debug("soak: fault", "device_id", d.id, "fault", f.name(), "lasts", f.lasts)
		f.apply(d.proxy)
		pause(ctx, nil, f.lasts)
		clearFaults(d.proxy)
	}
}

// restartLoop restarts the hub about every RestartGap until faults ends,
// each time keeping it down for 0.1–0.6 keep-alives. A restart under way
// when faults ends completes; run bounds it. A hub that cannot start again
// aborts the run.
func (s *soak) restartLoop(faults, run context.Context, rng *rand.Rand) {
	for pause(faults, nil, spread(rng, s.cfg.RestartGap)) {
		down := time.Duration((0.1 + 0.5*rng.Float64()) * float64(s.cfg.KeepAlive))
		s.counters.fault(FaultHubRestart)
		s.log.Info("soak: restarting the hub", "down", down)
		if err := s.hub.restart(run, down); err != nil {
			s.abort(err)
			return
		}
	}
}
