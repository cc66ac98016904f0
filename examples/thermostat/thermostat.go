package main

import (
	"context"
	"log/slog"
	"math"
	"time"

	"github.com/directmethods/iotdevice/device"
)

// modelID is Microsoft's public IoT Plug and Play sample model this
// device implements, the one of the official device SDKs'
// TemperatureController samples: a reboot command and two thermostat
// components, each with a getMaxMinReport command.
const modelID = "dtmi:com:example:TemperatureController;2"

// sampleInterval is how often the simulated thermostats take a reading.
const sampleInterval = 5 * time.Second

// controller is the simulated temperature controller: two thermostats
// whose temperatures are a function of time, sampled every
// sampleInterval since the program started.
type controller struct {
	started time.Time
	now     func() time.Time
	log     *slog.Logger
}

// thermostats are the model's components, each with its own simulated
// climate: a base temperature and a phase of the daily swing.
var thermostats = map[string]struct{ base, phase float64 }{
	"thermostat1": {base: 21, phase: 0},
	"thermostat2": {base: 24, phase: math.Pi / 3},
}

// temperature is the simulated reading of a thermostat at t: its base
// temperature, a swing of ±3 °C over ten minutes, rounded to 0.1 °C.
func temperature(component string, t time.Time) float64 {
	th := thermostats[component]
	angle := 2*math.Pi*float64(t.UnixNano()%int64(10*time.Minute))/float64(10*time.Minute) + th.phase
	return math.Round((th.base+3*math.Sin(angle))*10) / 10
}

// maxMinReport is the answer of getMaxMinReport, as the model defines it.
type maxMinReport struct {
	MaxTemp   float64 `json:"maxTemp"`
	MinTemp   float64 `json:"minTemp"`
	AvgTemp   float64 `json:"avgTemp"`
	StartTime string  `json:"startTime"`
	EndTime   string  `json:"endTime"`
}

// methods returns the mux serving the model's commands.
func (c *controller) methods() *device.MethodMux {
	mux := device.NewMethodMux()
	mux.HandleCommandFunc("", "reboot", c.reboot)
	for name := range thermostats {
		mux.HandleCommandFunc(name, "getMaxMinReport", c.getMaxMinReport)
	}
	return mux
}

// reboot takes the delay in seconds before the reboot. The simulation
// only logs it.
func (c *controller) reboot(_ context.Context, req *device.MethodRequest) (*device.MethodResponse, error) {
	var delay int
	if err := req.Unmarshal(&delay); err != nil {
		return nil, err
	}
	if delay < 0 {
		return nil, device.Errorf(400, "the delay must not be negative, not %d", delay)
	}
	c.log.Info("reboot requested (simulated: nothing reboots)", "delay_seconds", delay)
	return nil, nil
}

// getMaxMinReport answers with the maximum, minimum and average of the
// component's readings since the time its payload gives (an ISO 8601
// timestamp, as a JSON string), or 404 when there is none yet.
func (c *controller) getMaxMinReport(_ context.Context, req *device.MethodRequest) (*device.MethodResponse, error) {
	component, _ := req.Command()
	var sinceText string
	if err := req.Unmarshal(&sinceText); err != nil {
		return nil, err
	}
	since, err := time.Parse(time.RFC3339Nano, sinceText)
	if err != nil {
		return nil, device.Errorf(400, "since must be an ISO 8601 time such as 2026-11-30T10:00:00Z, not %q", sinceText)
	}
	report, ok := c.report(component, since)
	if !ok {
		return nil, device.Errorf(404, "no readings since %s", since.UTC().Format(time.RFC3339))
	}
	return device.JSONResponse(200, report)
}

// report summarises the component's readings taken from since until now.
func (c *controller) report(component string, since time.Time) (maxMinReport, bool) {
	now := c.now()
	// The first reading at or after since, on the sampling grid.
	first := c.started
	if since.After(first) {
		steps := (since.Sub(first) + sampleInterval - 1) / sampleInterval
		first = first.Add(steps * sampleInterval)
	}
	if first.After(now) {
		return maxMinReport{}, false
	}
	r := maxMinReport{MaxTemp: math.Inf(-1), MinTemp: math.Inf(1)}
	var sum float64
	n := 0
	last := first
	for t := first; !t.After(now); t = t.Add(sampleInterval) {
		v := temperature(component, t)
		r.MaxTemp, r.MinTemp = max(r.MaxTemp, v), min(r.MinTemp, v)
		sum += v
		n++
		last = t
	}
	r.AvgTemp = math.Round(sum/float64(n)*100) / 100
	r.StartTime = first.UTC().Format(time.RFC3339)
	r.EndTime = last.UTC().Format(time.RFC3339)
	return r, true
}
