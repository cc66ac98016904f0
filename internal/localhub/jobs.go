package localhub

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"
)

// Jobs, as IoT Hub has them ("Schedule jobs on multiple devices",
// iot-hub-devguide-jobs): a direct method scheduled for the devices a
// query condition selects, at a start time, for at most a maximum
// execution time, with the job's status and statistics in IoT Hub's
// JobResponse form (azure-iot-sdk-csharp Jobs/JobResponse.cs) and each
// device's record in the devices.jobs collection of the query language.
//
// The life of a job here:
//   - PUT answers it "queued". Its runner then marks it "scheduled" until
//     its startTime, or runs it at once.
//   - At its start the runner evaluates the query condition and the
//     devices it selects become the job's devices, each "pending". A
//     condition that does not parse fails the job ("failed", with the
//     parser's message as failureReason), as IoT Hub fails it
//     (azure-iot-sdk-csharp issue #40).
//   - The runner gives each device its turn at the tier's pace of job
//     device operations. A device that is online is called; one that is
//     offline is called as soon as it connects, while the job's time
//     (startTime + maxExecutionTimeInSeconds) lasts. A device becomes
//     "running" once the request is handed to it, and then "completed"
//     with its answer, whatever the status it answered with, or "failed"
//     with an error: DeviceNotOnline when it never connected in time,
//     GatewayTimeout when it did not answer within the response timeout.
//   - The job ends "completed" once every device is done, failed devices
//     counted in failedCount. Devices whose turn would come after the job's
//     time runs out fail with JobTimedOut (this hub's name; IoT Hub
//     documents none).
//   - Cancelling a job marks it "cancelled" at once: devices not yet
//     called become "canceled" and are counted as failed; calls already
//     handed to devices finish and are recorded.
//   - Jobs and their records are kept 30 days after they end ("Job history
//     is retained up to 30 days", iot-hub-devguide-quotas-throttling).

// Job statuses (azure-iot-sdk-csharp Jobs/JobStatus.cs).
const (
	jobQueued    = "queued"
	jobScheduled = "scheduled"
	jobRunning   = "running"
	jobCompleted = "completed"
	jobFailed    = "failed"
	jobCancelled = "cancelled"
)

// Device job statuses (azure-iot-sdk-csharp Jobs/DeviceJobStatus.cs; note
// the spelling "canceled").
const (
	deviceJobPending   = "pending"
	deviceJobRunning   = "running"
	deviceJobCompleted = "completed"
	deviceJobFailed    = "failed"
	deviceJobCanceled  = "canceled"
)

// jobTypeDeviceMethod is the one job type the hub runs.
const jobTypeDeviceMethod = "scheduleDeviceMethod"

// jobRetention is how long a job is kept after it ends.
const jobRetention = 30 * 24 * time.Hour

// terminalJobStatus reports whether a job with status s has ended.
func terminalJobStatus(s string) bool {
	return s == jobCompleted || s == jobFailed || s == jobCancelled
}

// job is one job, in the form it is persisted in.
type job struct {
	ID             string    `json:"jobId"`
	Type           string    `json:"type"`
	QueryCondition string    `json:"queryCondition"`
	Method         JobMethod `json:"cloudToDeviceMethod"`
	Created        time.Time `json:"createdTime"`
	Start          time.Time `json:"startTime"`
	End            time.Time `json:"endTime,omitzero"`
	MaxExecution   int64     `json:"maxExecutionTimeInSeconds"`
	Status         string    `json:"status"`
	FailureReason  string    `json:"failureReason,omitempty"`
	StatusMessage  string    `json:"statusMessage,omitempty"`
	// Selected is true once the job's devices have been selected, at its
	// start; Devices are then its devices, sorted by identity.
	Selected bool         `json:"selected,omitempty"`
	Devices  []*jobDevice `json:"devices,omitempty"`

	// cancel ends the runner's wait for devices not yet called; set while
	// a runner runs the job.
	cancel context.CancelFunc
}

// JobMethod is a job's direct method, as cloudToDeviceMethod gives it.
type JobMethod struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload"`
	ResponseTimeoutInSeconds int             `json:"responseTimeoutInSeconds"`
	ConnectTimeoutInSeconds  int             `json:"connectTimeoutInSeconds"`
}

// deadline is when the job's time runs out.
func (j *job) deadline() time.Time { return j.Start.Add(time.Duration(j.MaxExecution) * time.Second) }

// jobDevice is one device's record in a job.
type jobDevice struct {
	DeviceID         string        `json:"deviceId"`
	ModuleID         string        `json:"moduleId,omitempty"`
	Status           string        `json:"status"`
	Start            time.Time     `json:"startTimeUtc,omitzero"`
	End              time.Time     `json:"endTimeUtc,omitzero"`
	Created          time.Time     `json:"createdDateTimeUtc"`
	Updated          time.Time     `json:"lastUpdatedDateTimeUtc"`
	Response         *MethodResult `json:"deviceMethodResponse,omitempty"`
	ErrorCode        string        `json:"errorCode,omitempty"`
	ErrorDescription string        `json:"errorDescription,omitempty"`
}

// identity is the record's identity, "dev" or "dev/mod".
func (d *jobDevice) identity() string { return identityName(d.DeviceID, d.ModuleID) }

// jobStore holds the jobs. It is safe for concurrent use; persist, when
// set, runs after each change, outside the lock, and must not block.
type jobStore struct {
	persist func()

	mu      sync.Mutex
	jobs    map[string]*job
	changed chan struct{} // closed and replaced at every change
}

func newJobStore() *jobStore {
	return &jobStore{jobs: map[string]*job{}, changed: make(chan struct{})}
}

// change runs f on the store under its lock, then wakes the waiters and
// persists.
func (s *jobStore) change(f func()) {
	s.mu.Lock()
	f()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	if s.persist != nil {
		s.persist()
	}
}

// add stores j unless its id is in use, and counts the jobs still active
// (queued, scheduled or running) before it; limit (0: none) refuses j when
// that many are active. It also forgets the jobs past their retention.
func (s *jobStore) add(j *job, limit int, now time.Time) (active int, exists bool) {
	s.change(func() {
		for id, old := range s.jobs {
			if terminalJobStatus(old.Status) && now.Sub(old.End) > jobRetention {
				delete(s.jobs, id)
			}
		}
		if _, exists = s.jobs[j.ID]; exists {
			return
		}
		for _, old := range s.jobs {
			if !terminalJobStatus(old.Status) {
				active++
			}
		}
		if limit > 0 && active >= limit {
			return
		}
		s.jobs[j.ID] = j
	})
	return active, exists
}

// view runs f on the job id under the store's lock; ok is false when there
// is no such job.
func (s *jobStore) view(id string, f func(*job)) (ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if ok {
		f(j)
	}
	return ok
}

// update runs f on the job id under the store's lock, then wakes the
// waiters and persists.
func (s *jobStore) update(id string, f func(*job)) {
	s.change(func() {
		if j, ok := s.jobs[id]; ok {
			f(j)
		}
	})
}

// wait waits until done reports true for the job id (run under the lock),
// the job does not exist, or ctx ends.
func (s *jobStore) wait(ctx context.Context, id string, done func(*job) bool) error {
	for {
		s.mu.Lock()
		j, ok := s.jobs[id]
		finished := !ok || done(j)
		changed := s.changed
		s.mu.Unlock()
		if finished {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// list returns the answers of the jobs for which keep reports true, as
// query items ordered by creation.
func (s *jobStore) list(keep func(*job) bool) []queryItem {
	s.mu.Lock()
	defer s.mu.Unlock()
	var items []queryItem
	for _, j := range s.jobs {
		if keep(j) {
			items = append(items, queryItem{key: j.Created.UTC().Format(sortableTime) + "\x00" + j.ID, value: j.response()})
		}
	}
	return items
}

// sortableTime formats times so that their strings sort in time order.
const sortableTime = "2006-01-02T15:04:05.000000000Z"

// deviceJobItems returns every device record of every job, as the
// devices.jobs collection of the query language.
func (s *jobStore) deviceJobItems() []queryItem {
	s.mu.Lock()
	defer s.mu.Unlock()
	var items []queryItem
	for _, j := range s.jobs {
		for _, d := range j.Devices {
			items = append(items, queryItem{key: j.ID + "\x00" + d.DeviceID + "\x00" + d.ModuleID, value: d.record(j)})
		}
	}
	return items
}

// active returns the ids of the jobs that have not ended.
func (s *jobStore) active() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id, j := range s.jobs {
		if !terminalJobStatus(j.Status) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// snapshot returns a deep copy of every job, for persistence.
func (s *jobStore) snapshot() []*job {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*job, 0, len(s.jobs))
	for _, j := range s.jobs {
		c := *j
		c.cancel = nil
		c.Devices = make([]*jobDevice, len(j.Devices))
		for i, d := range j.Devices {
			dc := *d
			if d.Response != nil {
				r := *d.Response
				dc.Response = &r
			}
			c.Devices[i] = &dc
		}
		out = append(out, &c)
	}
	slices.SortFunc(out, func(a, b *job) int { return a.Created.Compare(b.Created) })
	return out
}

// restore replaces the store's jobs with persisted ones. A device whose
// call was in flight when the hub stopped without closing fails: whether
// its method ran is unknown, as IoT Hub's 504101 GatewayTimeout puts it
// ("couldn't confirm if the direct method completed").
func (s *jobStore) restore(jobs []*job) {
	s.change(func() {
		s.jobs = make(map[string]*job, len(jobs))
		for _, j := range jobs {
			for _, d := range j.Devices {
				if d.Status == deviceJobRunning {
					d.Status, d.End = deviceJobFailed, d.Updated
					d.ErrorCode, d.ErrorDescription = codeGatewayTimeout, hubStoppedDescription
				}
			}
			s.jobs[j.ID] = j
		}
	})
}
