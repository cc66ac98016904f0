package bench

import (
	"context"
	"time"
)

// Compare runs the two devices of pair on cfg.Transport back to back on
// t, runs times each, alternating which goes first, and returns the
// medians and their ratios. report, when not nil, receives every run's
// result as it completes.
func Compare(ctx context.Context, t *Target, cfg Config, pair Pair, runs int, report func(Result)) (Comparison, error) {
	runs = max(runs, 1)
	var sdk, raw []Result
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
	if c.Raw.P50 > 0 {
		c.P50Ratio = float64(c.SDK.P50) / float64(c.Raw.P50)
	}
	if c.Raw.Rate > 0 {
		c.RateRatio = c.SDK.Rate / c.Raw.Rate
	}
	return c, nil
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
