package localhub

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// The jobs API (the IoT Hub REST reference's "Jobs" operations;
// azure-iot-sdk-node service/src/job_client.ts):
//
//	PUT  /jobs/v2/{jobId}         schedule a job; 200 with its JobResponse
//	GET  /jobs/v2/{jobId}         the job's JobResponse
//	POST /jobs/v2/{jobId}/cancel  cancel it; 200 with its JobResponse
//	GET  /jobs/v2/query[?jobType=&jobStatus=]  the jobs, paged
//
// Refusals: 404002 JobNotFound, 409104 JobAlreadyExists, 400004
// ArgumentInvalid for a bad body, 429004 ThrottlingMaxActiveJobCountExceeded
// beyond the tier's concurrent jobs, and 429001 when the jobs operations
// throttle's backlog is full.

// jobsPathPrefix starts every path of the jobs API.
const jobsPathPrefix = "/jobs/v2/"

// jobStatusFilters are the jobStatus values /jobs/v2/query takes, with the
// status each selects: IoT Hub's values and their C# SDK synonyms
// ("enqueued" for queued; the device jobs' spelling "canceled").
var jobStatusFilters = map[string]string{
	jobQueued: jobQueued, "enqueued": jobQueued, jobScheduled: jobScheduled, jobRunning: jobRunning,
	jobCompleted: jobCompleted, jobFailed: jobFailed, jobCancelled: jobCancelled, "canceled": jobCancelled,
}

// serveJobs answers the jobs API and reports whether the path was one of
// its paths.
func (h *Hub) serveJobs(w http.ResponseWriter, r *http.Request) bool {
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), jobsPathPrefix)
	if !ok {
		return false
	}
	rest = strings.TrimSuffix(rest, "/")
	rawID, action, _ := strings.Cut(rest, "/")
	id, ok := unescapeSegment(rawID)
	switch {
	case !ok || strings.Contains(action, "/") || (action != "" && action != "cancel"):
		return false
	case action == "cancel":
		if r.Method != http.MethodPost {
			errMethodNotAllowedOn(w, r, http.MethodPost)
			return true
		}
		h.serveCancelJob(w, r, id)
	case id == "query" && r.Method == http.MethodGet:
		h.serveQueryJobs(w, r)
	case r.Method == http.MethodGet:
		h.serveGetJob(w, r, id)
	case r.Method == http.MethodPut:
		h.serveCreateJob(w, r, id)
	default:
		errMethodNotAllowedOn(w, r, "GET, PUT")
	}
	return true
}

// serveCreateJob answers PUT /jobs/v2/{id}.
func (h *Hub) serveCreateJob(w http.ResponseWriter, r *http.Request, id string) {
	if !h.checkHubRequest(w, r) {
		return
	}
	raw, ok := h.readAuthenticatedBody(w, r)
	if !ok {
		return
	}
	if !h.admit(w, r, h.throttle.jobsOps, 1, "jobs operations") {
		return
	}
	j, rerr := decodeJobBody(raw, id, time.Now())
	if rerr != nil {
		rerr.write(w)
		return
	}
	limit := h.throttle.maxActiveJobs
	active, exists := h.jobs.add(j, limit, j.Created)
	switch {
	case exists:
		errJobAlreadyExists(id).write(w)
		return
	case limit > 0 && active >= limit:
		h.log.Info("rest: job refused: too many active jobs", "job", id, "active", active)
		errMaxActiveJobs(limit).write(w)
		return
	}
	var resp Job
	h.jobs.view(id, func(j *job) { resp = j.response() })
	h.log.Info("rest: job scheduled", "job", id, "method", j.Method.MethodName, "start", j.Start)
	if !h.startJob(id) {
		errServiceUnavailable().write(w)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// serveGetJob answers GET /jobs/v2/{id}.
func (h *Hub) serveGetJob(w http.ResponseWriter, r *http.Request, id string) {
	if !h.checkHubRequest(w, r) {
		return
	}
	var resp Job
	if !h.jobs.view(id, func(j *job) { resp = j.response() }) {
		errJobNotFound(id).write(w)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// serveCancelJob answers POST /jobs/v2/{id}/cancel.
func (h *Hub) serveCancelJob(w http.ResponseWriter, r *http.Request, id string) {
	if !h.checkHubRequest(w, r) {
		return
	}
	if !h.admit(w, r, h.throttle.jobsOps, 1, "jobs operations") {
		return
	}
	resp, ok := h.cancelJob(id)
	if !ok {
		errJobNotFound(id).write(w)
		return
	}
	h.log.Info("rest: job cancel", "job", id, "status", resp.Status)
	writeJSON(w, http.StatusOK, resp)
}

// serveQueryJobs answers GET /jobs/v2/query?jobType=&jobStatus=.
func (h *Hub) serveQueryJobs(w http.ResponseWriter, r *http.Request) {
	if !h.checkHubRequest(w, r) {
		return
	}
	query := r.URL.Query()
	jobType, status := query.Get("jobType"), query.Get("jobStatus")
	if jobType != "" && jobType != jobTypeDeviceMethod && jobType != "scheduleUpdateTwin" {
		errArgumentInvalid(fmt.Sprintf("jobType %q is not scheduleDeviceMethod or scheduleUpdateTwin.", clip(jobType))).write(w)
		return
	}
	want, known := jobStatusFilters[status]
	if status != "" && !known {
		errArgumentInvalid(fmt.Sprintf("jobStatus %q is not one of queued, scheduled, running, completed, failed, cancelled.", clip(status))).write(w)
		return
	}
	scope := "jobs\x00" + jobType + "\x00" + status
	p, err := readPageRequest(r.Header, scope)
	if err != nil {
		errArgumentInvalid(err.Error()).write(w)
		return
	}
	if !h.admit(w, r, h.throttle.jobsOps, 1, "jobs operations") {
		return
	}
	items := h.jobs.list(func(j *job) bool {
		return (jobType == "" || j.Type == jobType) && (status == "" || j.Status == want)
	})
	page, continuation := p.page(items, scope, func(any) bool { return true })
	writePage(w, "jobResponse", page, continuation)
}
