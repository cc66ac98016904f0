package localhub

import (
	"context"
	"path/filepath"
	"sync"
	"time"
)

// The service side's state kept in Options.Dir next to state.json: the
// twins' tags in twins.json, written at every change before the update is
// answered, and the jobs with their device records in jobs.json, written
// at most jobsSaveDelay after a change and once more when the hub closes.
// A hub that crashes loses at most that much of its jobs' progress; a job
// interrupted by a restart resumes (see jobs.go).
const (
	twinsFileName = "twins.json"
	jobsFileName  = "jobs.json"
	jobsSaveDelay = 200 * time.Millisecond
)

// persistedTwins is the content of twins.json.
type persistedTwins struct {
	Twins map[string]twinTags `json:"twins"`
}

// persistedJobs is the content of jobs.json.
type persistedJobs struct {
	Jobs []*job `json:"jobs"`
}

// serviceFiles writes twins.json and jobs.json. Its mutex serialises the
// writes; each write takes its snapshot under it, so the last write holds
// the newest state.
type serviceFiles struct {
	dir  string
	mu   sync.Mutex
	wake chan struct{} // a jobs save is due; buffered
}

// initService creates the tag and job stores and the throttles, loading
// the stores from dir when it is set.
func (h *Hub) initService(dir string, tier Tier) error {
	if err := tier.validate(); err != nil {
		return err
	}
	h.throttle = newThrottles(tier)
	h.tags, h.jobs = newTagStore(), newJobStore()
	if dir == "" {
		return nil
	}
	h.files = &serviceFiles{dir: dir, wake: make(chan struct{}, 1)}
	var twins persistedTwins
	if _, err := readJSONFile(filepath.Join(dir, twinsFileName), &twins); err != nil {
		return err
	}
	h.tags.restore(twins.Twins)
	var jobs persistedJobs
	if _, err := readJSONFile(filepath.Join(dir, jobsFileName), &jobs); err != nil {
		return err
	}
	h.jobs.restore(jobs.Jobs)
	h.tags.persist = func() {
		if err := h.saveTwins(); err != nil {
			h.log.Error("localhub: saving twins failed", "err", err)
		}
	}
	h.jobs.persist = func() {
		select {
		case h.files.wake <- struct{}{}:
		default: // a save is due already
		}
	}
	return nil
}

// saveTwins writes twins.json.
func (h *Hub) saveTwins() error {
	return h.saveFile(twinsFileName, func() any { return persistedTwins{Twins: h.tags.snapshot()} })
}

// saveJobs writes jobs.json.
func (h *Hub) saveJobs() error {
	return h.saveFile(jobsFileName, func() any { return persistedJobs{Jobs: h.jobs.snapshot()} })
}

// saveFile writes the content snapshot returns, taken under the files'
// lock, to name in the hub's directory.
func (h *Hub) saveFile(name string, snapshot func() any) error {
	h.files.mu.Lock()
	defer h.files.mu.Unlock()
	return writeJSONFile(filepath.Join(h.files.dir, name), snapshot(), 0o600)
}

// startService starts the jobs saver and resumes the jobs that had not
// ended; it runs once the hub's context exists.
func (h *Hub) startService() {
	if h.files != nil && h.enter() {
		go func() { // owned by the hub: ends when Close cancels h.ctx; joined in Close
			defer h.wg.Done()
			h.saveJobsLoop(h.ctx)
		}()
	}
	h.resumeJobs()
}

// saveJobsLoop writes jobs.json jobsSaveDelay after each change, so that a
// burst of changes costs one write.
func (h *Hub) saveJobsLoop(ctx context.Context) {
	for {
		select {
		case <-h.files.wake:
		case <-ctx.Done():
			return
		}
		t := time.NewTimer(jobsSaveDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return // Close saves once all goroutines have ended
		}
		if err := h.saveJobs(); err != nil {
			h.log.Error("localhub: saving jobs failed", "err", err)
		}
	}
}

// closeService saves the jobs one last time, once every goroutine of the
// hub has ended.
func (h *Hub) closeService() {
	if h.files == nil {
		return
	}
	if err := h.saveJobs(); err != nil {
		h.log.Error("localhub: saving jobs failed", "err", err)
	}
}
