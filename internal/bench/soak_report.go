package bench

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// Soak report phases.
const (
	SoakStart    = "start"    // the devices are connected, no fault yet
	SoakProgress = "progress" // every ReportEvery while the soak runs
	SoakEnd      = "end"      // the clients, proxies and hub are closed
)

// SoakMemory is the process's memory at one moment, after a full GC.
type SoakMemory struct {
	Goroutines int   `json:"goroutines"`
	Heap       int64 `json:"heap_bytes"` // live heap (runtime.MemStats.HeapAlloc)
	RSS        int64 `json:"rss_bytes"`  // 0 where /proc is missing
}

func soakMemory(m Memory) SoakMemory {
	return SoakMemory{Goroutines: m.Goroutines, Heap: m.HeapAlloc, RSS: m.RSS}
}

func (m SoakMemory) String() string {
	return fmt.Sprintf("goroutines=%d heap=%s rss=%s", m.Goroutines, mib(m.Heap), mib(m.RSS))
}

func mib(b int64) string { return fmt.Sprintf("%.1fMB", float64(b)/(1<<20)) }

// SoakReport is what a soak has seen so far: calls and their outcomes,
// what the clients counted, the faults injected and the process's memory.
// The end report adds the recovery after the faults, the memory before
// and after the clients closed, and the verdict. In JSON, durations are
// in seconds.
type SoakReport struct {
	Phase      string        `json:"phase"` // SoakStart, SoakProgress or SoakEnd
	Seed       uint64        `json:"seed"`
	Elapsed    time.Duration `json:"-"` // since the devices connected
	Transports []string      `json:"transports"`
	Devices    int           `json:"devices"` // in all
	Callers    int           `json:"callers"` // in all

	// Calls counts every call made; Answered those answered right;
	// Failed the others by kind: the hub's error code (404103 device
	// offline, 504101 timeout, 503001 the hub shut down during the call),
	// "hub-unreachable" (the service API was down: a hub restart),
	// "device-<status>" (an error the device's SDK answered) and
	// "wrong-answer" (an answer that is not the call's: another call's, or
	// altered). Calls = Answered + the sum of Failed.
	Calls    int64            `json:"calls"`
	Answered int64            `json:"answered"`
	Failed   map[string]int64 `json:"failed"`
	// WrongAnswers is Failed["wrong-answer"]; any is a failure.
	WrongAnswers int64 `json:"wrong_answers"`
	// AnswersLost and RequestsDropped sum the clients' Stats.
	AnswersLost     uint64 `json:"answers_lost"`
	RequestsDropped uint64 `json:"requests_dropped"`
	// Reconnects counts the clients' connections after their first.
	Reconnects int64            `json:"reconnects"`
	Faults     map[string]int64 `json:"faults"` // by kind (the Fault constants, with directions)

	Memory SoakMemory `json:"memory"` // now; at the end, once everything is closed
	// Baseline is the memory before the hub started (start and end
	// reports); Running the memory at the end of the calls, before the
	// clients closed (end report).
	Baseline *SoakMemory `json:"baseline,omitempty"`
	Running  *SoakMemory `json:"running,omitempty"`

	// End report only.
	Recovered   int           `json:"recovered,omitempty"`   // devices that answered after the faults stopped
	Unrecovered []string      `json:"unrecovered,omitempty"` // devices that did not, or failed the last call
	RecoveryMax time.Duration `json:"-"`                     // the slowest recovery
	// Failures says why the soak failed; empty when it passed.
	Failures []string `json:"failures,omitempty"`
}

// Bounds of what closing everything must give back, against the baseline.
const (
	SoakGoroutineSlack = 5
	SoakHeapSlack      = 8 << 20
)

// Passed reports whether the soak passed (meaningful in the end report).
func (r SoakReport) Passed() bool { return len(r.Failures) == 0 }

// MarshalJSON writes the durations in seconds.
func (r SoakReport) MarshalJSON() ([]byte, error) {
	type plain SoakReport // drops the method, so that it does not recurse
	var recovery *float64
	if r.Phase == SoakEnd {
		s := r.RecoveryMax.Seconds()
		recovery = &s
	}
	return json.Marshal(struct {
		plain
		ElapsedSeconds  float64  `json:"elapsed_s"`
		RecoverySeconds *float64 `json:"recovery_max_s,omitempty"`
		Passed          *bool    `json:"passed,omitempty"`
	}{plain(r), r.Elapsed.Seconds(), recovery, r.passedField()})
}

func (r SoakReport) passedField() *bool {
	if r.Phase != SoakEnd {
		return nil
	}
	ok := r.Passed()
	return &ok
}

// String is the text form: one line, two at the end.
func (r SoakReport) String() string {
	var b strings.Builder
	switch r.Phase {
	case SoakStart:
		fmt.Fprintf(&b, "soak start   seed=%d transports=%s devices=%d callers=%d %s (before the hub: %s)",
			r.Seed, strings.Join(r.Transports, ","), r.Devices, r.Callers, r.Memory, r.Baseline)
		return b.String()
	case SoakEnd:
		fmt.Fprintf(&b, "soak end     ")
	default:
		fmt.Fprintf(&b, "soak %-7s ", r.Elapsed.Round(time.Second))
	}
	fmt.Fprintf(&b, "calls=%d answered=%d failed=%s wrong-answers=%d answers-lost=%d requests-dropped=%d reconnects=%d faults=%s",
		r.Calls, r.Answered, sortedCounts(r.Failed), r.WrongAnswers, r.AnswersLost, r.RequestsDropped, r.Reconnects, sortedCounts(r.Faults))
	if r.Phase != SoakEnd {
		fmt.Fprintf(&b, " %s", r.Memory)
		return b.String()
	}
	verdict := "PASS"
	if !r.Passed() {
		verdict = "FAIL: " + strings.Join(r.Failures, "; ")
	}
	fmt.Fprintf(&b, "\nsoak verdict elapsed=%s seed=%d recovered=%d/%d (slowest %s) running: %s closed: %s (before the hub: %s; bounds +%d goroutines, +%s heap): %s",
		r.Elapsed.Round(time.Second), r.Seed, r.Recovered, r.Devices, r.RecoveryMax.Round(time.Millisecond), r.Running, r.Memory, r.Baseline,
		SoakGoroutineSlack, mib(SoakHeapSlack), verdict)
	return b.String()
}

// sortedCounts renders counts as "k1:n1,k2:n2" in key order, "-" when
// there are none.
func sortedCounts(counts map[string]int64) string {
	if len(counts) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(counts))
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%s:%d", k, counts[k]))
	}
	return strings.Join(parts, ",")
}

// soakCounters are the soak's running counts. Its methods are safe for
// concurrent use.
type soakCounters struct {
	mu       sync.Mutex
	calls    int64
	answered int64
	failed   map[string]int64
	faults   map[string]int64
}

// called counts a call with its outcome (outcomeOK or a failure kind).
func (c *soakCounters) called(outcome string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if outcome == outcomeOK {
		c.answered++
		return
	}
	if c.failed == nil {
		c.failed = map[string]int64{}
	}
	c.failed[outcome]++
}

// fault counts an injected fault.
func (c *soakCounters) fault(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.faults == nil {
		c.faults = map[string]int64{}
	}
	c.faults[name]++
}

// fill copies the counts into r.
func (c *soakCounters) fill(r *SoakReport) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r.Calls, r.Answered = c.calls, c.answered
	r.Failed, r.Faults = map[string]int64{}, map[string]int64{}
	maps.Copy(r.Failed, c.failed)
	maps.Copy(r.Faults, c.faults)
	r.WrongAnswers = c.failed[outcomeWrong]
}
