package localhub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// The jobs calls of ServiceClient, as the official service SDKs make them
// (azure-iot-sdk-node job_client.ts).

// JobRequest is the body of PUT /jobs/v2/{jobId}.
type JobRequest struct {
	JobID                     string      `json:"jobId"`
	Type                      string      `json:"type"`
	CloudToDeviceMethod       *MethodCall `json:"cloudToDeviceMethod,omitempty"`
	QueryCondition            string      `json:"queryCondition"`
	StartTime                 string      `json:"startTime,omitempty"` // RFC 3339; "" for now
	MaxExecutionTimeInSeconds int64       `json:"maxExecutionTimeInSeconds,omitempty"`
}

// ScheduleJob calls PUT /jobs/v2/{job.JobID}. A non-200 answer is a
// *ServiceError.
func (c *ServiceClient) ScheduleJob(ctx context.Context, job JobRequest) (*Job, error) {
	body, err := json.Marshal(job)
	if err != nil {
		return nil, fmt.Errorf("localhub: schedule job: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.url(jobsPathPrefix+url.PathEscape(job.JobID)+"?api-version="+serviceAPIVersion), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("localhub: schedule job: %w", err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	var j Job
	if err := c.doJSON(req, &j); err != nil {
		return nil, fmt.Errorf("localhub: schedule job: %w", err)
	}
	return &j, nil
}

// GetJob calls GET /jobs/v2/{id}.
func (c *ServiceClient) GetJob(ctx context.Context, id string) (*Job, error) {
	var j Job
	if err := c.getJSON(ctx, jobsPathPrefix+url.PathEscape(id)+"?api-version="+serviceAPIVersion, &j); err != nil {
		return nil, fmt.Errorf("localhub: get job: %w", err)
	}
	return &j, nil
}

// CancelJob calls POST /jobs/v2/{id}/cancel.
func (c *ServiceClient) CancelJob(ctx context.Context, id string) (*Job, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(jobsPathPrefix+url.PathEscape(id)+"/cancel?api-version="+serviceAPIVersion), nil)
	if err != nil {
		return nil, fmt.Errorf("localhub: cancel job: %w", err)
	}
	var j Job
	if err := c.doJSON(req, &j); err != nil {
		return nil, fmt.Errorf("localhub: cancel job: %w", err)
	}
	return &j, nil
}

// QueryJobs calls GET /jobs/v2/query with the filters that are not "", for
// one page.
func (c *ServiceClient) QueryJobs(ctx context.Context, jobType, jobStatus string, pageSize int, continuation string) (*QueryPage, error) {
	query := url.Values{"api-version": {serviceAPIVersion}}
	if jobType != "" {
		query.Set("jobType", jobType)
	}
	if jobStatus != "" {
		query.Set("jobStatus", jobStatus)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(jobsPathPrefix+"query?"+query.Encode()), nil)
	if err != nil {
		return nil, fmt.Errorf("localhub: query jobs: %w", err)
	}
	page, err := c.page(req, pageSize, continuation)
	if err != nil {
		return nil, fmt.Errorf("localhub: query jobs: %w", err)
	}
	return page, nil
}

// DeviceJobs returns every device record of the job id, through the
// devices.jobs collection.
func (c *ServiceClient) DeviceJobs(ctx context.Context, id string) ([]DeviceJob, error) {
	if err := validateJobID(id); err != nil {
		return nil, fmt.Errorf("localhub: device jobs: %w", err)
	}
	items, err := c.QueryAll(ctx, "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '"+id+"'")
	if err != nil {
		return nil, err
	}
	records := make([]DeviceJob, len(items))
	for i, item := range items {
		if err := json.Unmarshal(item, &records[i]); err != nil {
			return nil, fmt.Errorf("localhub: device jobs: decode: %w", err)
		}
	}
	return records, nil
}
