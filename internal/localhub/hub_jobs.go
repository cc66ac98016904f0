package localhub

import (
	"context"
	"errors"
	"fmt"
)

// ErrUnknownJob reports a job id the hub does not have.
var ErrUnknownJob = errors.New("localhub: job not found")

// WaitJob waits until the job id has ended: its status is completed,
// failed or cancelled and the calls it handed to devices have finished
// (its endTime is set). It fails with ErrUnknownJob for an unknown job, or
// when ctx ends first.
func (h *Hub) WaitJob(ctx context.Context, id string) error {
	if err := h.jobs.wait(ctx, id, func(j *job) bool { return !j.End.IsZero() }); err != nil {
		return fmt.Errorf("localhub: wait for job %q: %w", id, err)
	}
	if !h.jobs.view(id, func(*job) {}) {
		return fmt.Errorf("%w: %q", ErrUnknownJob, id)
	}
	return nil
}
