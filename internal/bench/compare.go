package bench

import (
	"context"
	"time"
)

// Compare runs the two devices of pair on cfg.Transport back to back on
// t, runs rounds of one run each, alternating which goes first, and
// returns the medians of each device and the median of the rounds'
// ratios. Each round's two runs are adjacent in time, so its ratio is
// little affected by load that drifts over the whole comparison, which
// the ratio of the two medians is not. report, when not nil, receives
// every run's result as it completes.
func Compare(ctx context.Context, t *Target, cfg Config, pair Pair, runs int, report func(Result)) (Comparison, error) {
	runs = max(runs, 1)
	var sdk, raw []Result // round i is sdk[i] and raw[i]
	for i := range runs {
		order := []string{pair.SDK, pair.Raw}
		if i%2 == 1 {
			order = []string{pair.Raw, pair.SDK}
		}
		for _, kind := range order {
			c := cfg
			c.Device = kind
			r, err := Run(ctx, t, c)
			if err != nil {
				return Comparison{}, err
			}
			if report != nil {
				report(r)
			}
			if kind == pair.SDK {
				sdk = append(sdk, r)
			} else {
				raw = append(raw, r)
			}
		}
	}
	c := Comparison{Transport: cfg.Transport, SDKKind: pair.SDK, RawKind: pair.Raw, Runs: runs, SDK: medianResult(sdk), Raw: medianResult(raw)}
	c.P50Ratio, c.RateRatio = roundRatios(sdk, raw)
	return c, nil
}

// roundRatios returns the medians over the rounds (sdk[i], raw[i]) of the
// p50 ratio and of the rate ratio. Rounds where raw has no p50 or no rate
// are left out of that ratio.
func roundRatios(sdk, raw []Result) (p50Ratio, rateRatio float64) {
	var p50s, rates []float64
	for i := range min(len(sdk), len(raw)) {
		if raw[i].P50 > 0 {
			p50s = append(p50s, float64(sdk[i].P50)/float64(raw[i].P50))
		}
		if raw[i].Rate > 0 {
			rates = append(rates, sdk[i].Rate/raw[i].Rate)
		}
	}
	return median(p50s), median(rates)
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
	return m
}
