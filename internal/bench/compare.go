package bench

import (
	"context"
	"slices"
	"time"
)

// Compare runs the devices of pair on cfg.Transport on t: rounds of one
// run of each, back to back, in an order that reverses from one round to
// the next. It returns the medians of each device and the medians of the
// rounds' ratios. Each round's runs are adjacent in time, so its ratios
// are little affected by load that drifts over the whole comparison,
// which the ratio of two medians is not. report, when not nil, receives
// every run's result as it completes.
func Compare(ctx context.Context, t *Target, cfg Config, pair Pair, runs int, report func(Result)) (Comparison, error) {
	runs = max(runs, 1)
	kinds := []string{pair.SDK, pair.Raw}
	for _, kind := range []string{pair.Floor, pair.Handoff} {
		if kind != "" {
			kinds = append(kinds, kind)
		}
	}
	results := make([][]Result, len(kinds)) // results[k][i]: kind k in round i
	for i := range runs {
		for j := range kinds {
			k := j
			if i%2 == 1 {
				k = len(kinds) - 1 - j
			}
			c := cfg
			c.Device = kinds[k]
			r, err := Run(ctx, t, c)
			if err != nil {
				return Comparison{}, err
			}
			if report != nil {
				report(r)
			}
			results[k] = append(results[k], r)
		}
	}
	sdk, raw := results[0], results[1]
	c := Comparison{Transport: cfg.Transport, SDKKind: pair.SDK, RawKind: pair.Raw, Runs: runs, SDK: medianResult(sdk), Raw: medianResult(raw)}
	c.P50Ratio, c.RateRatio, c.CPURatio = roundRatios(sdk, raw)
	if pair.Floor != "" {
		floor := results[slices.Index(kinds, pair.Floor)]
		c.FloorKind, c.Floor = pair.Floor, medianResult(floor)
		c.FloorP50Ratio, c.FloorRateRatio, c.FloorCPURatio = roundRatios(sdk, floor)
	}
	if pair.Handoff != "" {
		handoff := results[slices.Index(kinds, pair.Handoff)]
		c.HandoffKind, c.Handoff = pair.Handoff, medianResult(handoff)
		c.HandoffP50Ratio, c.HandoffRateRatio, c.HandoffCPURatio = roundRatios(sdk, handoff)
	}
	return c, nil
}

// roundRatios returns the medians over the rounds (sdk[i], other[i]) of
// the p50 ratio, the rate ratio and the ratio of CPU per call. Rounds
// where other has no such figure are left out of that ratio.
func roundRatios(sdk, other []Result) (p50Ratio, rateRatio, cpuRatio float64) {
	var p50s, rates, cpus []float64
	for i := range min(len(sdk), len(other)) {
		if other[i].P50 > 0 {
			p50s = append(p50s, float64(sdk[i].P50)/float64(other[i].P50))
		}
		if other[i].Rate > 0 {
			rates = append(rates, sdk[i].Rate/other[i].Rate)
		}
		if other[i].CPUPerCall > 0 {
			cpus = append(cpus, float64(sdk[i].CPUPerCall)/float64(other[i].CPUPerCall))
		}
	}
	return median(p50s), median(rates), median(cpus)
}

// medianResult returns the first result with every measure replaced by its
// median over results, and calls and errors summed.
func medianResult(results []Result) Result {
	if len(results) == 0 {
		return Result{}
	}
	m := results[0]
	m.Calls, m.Errors = 0, 0
	pick := func(get func(Result) float64) float64 {
		values := make([]float64, len(results))
		for i, r := range results {
			values[i] = get(r)
		}
		return median(values)
	}
	dur := func(get func(Result) time.Duration) time.Duration {
		return time.Duration(pick(func(r Result) float64 { return float64(get(r)) }))
	}
	for _, r := range results {
		m.Calls += r.Calls
		m.Errors += r.Errors
	}
	m.Rate = pick(func(r Result) float64 { return r.Rate })
	m.Elapsed = dur(func(r Result) time.Duration { return r.Elapsed })
	m.P50 = dur(func(r Result) time.Duration { return r.P50 })
	m.P90 = dur(func(r Result) time.Duration { return r.P90 })
	m.P99 = dur(func(r Result) time.Duration { return r.P99 })
	m.Max = dur(func(r Result) time.Duration { return r.Max })
	m.CPUPerCall = dur(func(r Result) time.Duration { return r.CPUPerCall })
	return m
}
