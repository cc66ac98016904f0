package localhub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// errJobCancelled is the cause of a cancelled job's context.
var errJobCancelled = errors.New("localhub: job cancelled")

// Device job errors: IoT Hub's error names and messages for the same
// failures of a direct method call (troubleshoot-error-codes; the
// messages of 404103 and 504101 in rest_errors.go), and this hub's own
// for a job whose time runs out before a device's turn.
const (
	codeDeviceNotOnline = "DeviceNotOnline"
	codeGatewayTimeout  = "GatewayTimeout"
	codeServerError     = "ServerError"
	codeJobTimedOut     = "JobTimedOut"
)

// hubStoppedDescription is the error of a device whose call was in flight
// when the hub stopped.
const hubStoppedDescription = "The hub stopped before the device answered; the method may have run."

// startJob runs j on a goroutine of its own, owned by the hub and joined by
// Close; it reports false once the hub is closing.
func (h *Hub) startJob(id string) bool {
	if !h.enter() {
		return false
	}
	ctx, cancel := context.WithCancelCause(h.ctx)
	h.jobs.update(id, func(j *job) {
		j.cancel = func() { cancel(errJobCancelled) }
		if j.Status == jobCancelled { // cancelled before its runner started
			cancel(errJobCancelled)
		}
	})
	go func() { // owned by the hub: ends when the job ends or the hub closes; joined in Close
		defer h.wg.Done()
		defer cancel(nil)
		h.runJob(ctx, id)
	}()
	return true
}

// resumeJobs starts a runner for every job that has not ended, after a
// restart.
func (h *Hub) resumeJobs() {
	for _, id := range h.jobs.active() {
		h.startJob(id)
	}
}

// runJob waits for the job's start, selects its devices, calls them at the
// tier's pace and ends the job. ctx ends when the job is cancelled or the
// hub closes; a hub that closes leaves the job as it is, to be resumed by
// the next start.
func (h *Hub) runJob(ctx context.Context, id string) {
	log := h.log.With("job", id)
	var start, deadline time.Time
	var selected bool
	h.jobs.view(id, func(j *job) { start, deadline, selected = j.Start, j.deadline(), j.Selected })
	if !selected {
		if wait := time.Until(start); wait > 0 {
			h.jobs.update(id, func(j *job) {
				if j.Status == jobQueued {
					j.Status = jobScheduled
				}
			})
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				h.endJob(ctx, id, log)
				return
			}
		}
		if !h.selectJobDevices(ctx, id, log) {
			h.endJob(ctx, id, log)
			return
		}
	}
	h.callJobDevices(ctx, id, deadline)
	h.endJob(ctx, id, log)
}

// selectJobDevices evaluates the job's query condition and makes the
// devices it selects the job's devices, or fails the job when the
// condition does not parse. It reports whether the job goes on.
func (h *Hub) selectJobDevices(ctx context.Context, id string, log *slog.Logger) bool {
	var condition string
	h.jobs.view(id, func(j *job) { condition = j.QueryCondition })
	q, err := parseCondition(condition)
	if err != nil {
		log.Info("localhub: job failed: its query condition does not parse", "err", err)
		h.jobs.update(id, func(j *job) {
			if j.Status == jobCancelled {
				return
			}
			j.Status, j.End = jobFailed, time.Now()
			j.FailureReason = "The query condition could not be parsed: " + err.Error()
		})
		return false
	}
	items, _ := h.queryItems(q.source)
	page, _ := pageRequest{size: len(items) + 1}.page(items, "", func(v any) bool { return q.matches(queryDocument(v)) })
	now := time.Now()
	cancelled := false
	h.jobs.update(id, func(j *job) {
		if j.Status == jobCancelled {
			cancelled = true
			return
		}
		for _, v := range page {
			t := v.(twinJSON)
			j.Devices = append(j.Devices, &jobDevice{DeviceID: t.DeviceID, ModuleID: t.ModuleID, Status: deviceJobPending, Created: now, Updated: now})
		}
		j.Selected, j.Status = true, jobRunning
	})
	if !cancelled {
		log.Info("localhub: job running", "devices", len(page))
	}
	return !cancelled && ctx.Err() == nil
}

// callJobDevices gives each pending device its turn at the pace of job
// device operations, until the job's deadline, and waits for the calls.
func (h *Hub) callJobDevices(ctx context.Context, id string, deadline time.Time) {
	var pending []int
	h.jobs.view(id, func(j *job) {
		for i, d := range j.Devices {
			if d.Status == deviceJobPending {
				pending = append(pending, i)
			}
		}
	})
	turnCtx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var calls sync.WaitGroup
	for _, i := range pending {
		if err := h.throttle.jobDeviceOperation(turnCtx); err != nil {
			break // cancelled, closing, or out of time
		}
		calls.Go(func() { h.callJobDevice(ctx, id, i, deadline) })
	}
	calls.Wait()
}

// callJobDevice calls the job's method on its device i and records the
// outcome. The wait for an offline device lasts until the job's deadline
// and ends if the job is cancelled; once handed to the device, the call
// runs its course unless the hub closes.
func (h *Hub) callJobDevice(ctx context.Context, id string, i int, deadline time.Time) {
	var identity string
	var m JobMethod
	h.jobs.view(id, func(j *job) { identity, m = j.Devices[i].identity(), j.Method })
	delivered := false
	resp, err := h.router.call(ctx, h.ctx, identity, m.MethodName, m.Payload, deadline,
		time.Duration(m.ResponseTimeoutInSeconds)*time.Second, func() {
			delivered = true
			now := time.Now()
			h.jobs.update(id, func(j *job) {
				d := j.Devices[i]
				d.Status, d.Start, d.Updated = deviceJobRunning, now, now
			})
		})
	now := time.Now()
	if err == nil {
		h.twins.active(identity, now)
	}
	h.jobs.update(id, func(j *job) {
		d := j.Devices[i]
		d.Updated = now
		status, code, description := deviceOutcome(err, delivered, h.ctx.Err() != nil, m)
		if status == "" {
			return // the hub is closing before the device was called: resumed on restart
		}
		d.Status, d.ErrorCode, d.ErrorDescription = status, code, description
		if status != deviceJobCanceled {
			d.End = now
		}
		if err == nil {
			d.Response = &MethodResult{Status: resp.status, Payload: jobPayload(resp.payload)}
		}
	})
}

// deviceOutcome maps how a job's call ended to the device's status and
// error; status is "" when the device stays pending.
func deviceOutcome(err error, delivered, closing bool, m JobMethod) (status, code, description string) {
	switch {
	case err == nil:
		return deviceJobCompleted, "", ""
	case errors.Is(err, ErrDeviceNotOnline):
		return deviceJobFailed, codeDeviceNotOnline, "Timed out waiting for device to connect."
	case errors.Is(err, ErrResponseTimeout):
		return deviceJobFailed, codeGatewayTimeout, fmt.Sprintf("Timed out waiting for the response from device (%d s).", m.ResponseTimeoutInSeconds)
	case errors.Is(err, ErrInvalidResponse):
		return deviceJobFailed, codeServerError, "The device's response is invalid."
	case delivered:
		return deviceJobFailed, codeGatewayTimeout, hubStoppedDescription
	case closing:
		return "", "", ""
	}
	return deviceJobCanceled, "", ""
}

// endJob ends a job whose runner is done: the devices still pending are
// canceled (a cancelled job) or failed (a job out of time), and the job
// gets its final status and end time. A hub that is closing leaves the job
// to be resumed.
func (h *Hub) endJob(ctx context.Context, id string, log *slog.Logger) {
	if h.ctx.Err() != nil {
		return
	}
	cancelled := errors.Is(context.Cause(ctx), errJobCancelled)
	now := time.Now()
	var status string
	h.jobs.update(id, func(j *job) {
		for _, d := range j.Devices {
			if d.Status != deviceJobPending {
				continue
			}
			d.Updated = now
			if cancelled || j.Status == jobCancelled {
				d.Status = deviceJobCanceled
				continue
			}
			d.Status, d.End = deviceJobFailed, now
			d.ErrorCode, d.ErrorDescription = codeJobTimedOut, "The job's maxExecutionTimeInSeconds runs out before the device's turn."
		}
		if !terminalJobStatus(j.Status) {
			j.Status = jobCompleted
		}
		if j.End.IsZero() {
			j.End = now
		}
		j.cancel = nil
		status = j.Status
	})
	log.Info("localhub: job ended", "status", status)
}

// cancelJob cancels the job id: it is "cancelled" at once, and its runner
// stops the devices not yet called. A job that has ended is left as it is.
// ok is false when there is no such job.
func (h *Hub) cancelJob(id string) (resp Job, ok bool) {
	var cancel context.CancelFunc
	h.jobs.update(id, func(j *job) {
		ok = true
		if !terminalJobStatus(j.Status) {
			j.Status, j.StatusMessage = jobCancelled, "The job was cancelled."
			cancel = j.cancel
		}
	})
	if cancel != nil {
		cancel()
	}
	if !ok {
		return Job{}, false
	}
	h.jobs.view(id, func(j *job) { resp = j.response() })
	return resp, true
}
