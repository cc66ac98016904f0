package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/directmethods/iotdevice/device"
)

// thermalZone is where Linux reports the SoC temperature, in millidegrees
// Celsius ("48312\n" is 48.312 °C).
const thermalZone = "/sys/class/thermal/thermal_zone0/temp"

// Sources of a reading.
const (
	sourceThermalZone = "thermal_zone0"
	sourceSimulated   = "simulated"
)

// Units a request may ask for.
const (
	unitCelsius    = "celsius"
	unitFahrenheit = "fahrenheit"
)

// readingRequest is the optional payload of getReading.
type readingRequest struct {
	Unit string `json:"unit"` // "celsius" (the default) or "fahrenheit"
}

// reading answers getReading. Fahrenheit is set only when asked for.
type reading struct {
	Celsius    float64  `json:"celsius"`
	Fahrenheit *float64 `json:"fahrenheit,omitempty"`
	Source     string   `json:"source"` // sourceThermalZone or sourceSimulated
	ReadAt     string   `json:"readAt"` // RFC 3339
}

// errBadReading is wrapped by parseMillidegrees's errors.
var errBadReading = errors.New("sensor: bad temperature reading")

// sensor reads the temperature from a sysfs file, or simulates it when
// path is empty.
type sensor struct {
	path string           // empty: simulated
	now  func() time.Time // time.Now in the program
}

// methods returns the direct method getReading (optional payload
// {"unit": "celsius"|"fahrenheit"}).
func (s *sensor) methods() *device.MethodMux {
	mux := device.NewMethodMux()
	mux.HandleFunc("getReading", s.getReading)
	return mux
}

func (s *sensor) getReading(_ context.Context, req *device.MethodRequest) (*device.MethodResponse, error) {
	unit := unitCelsius
	if len(req.Payload) > 0 && string(req.Payload) != "null" {
		var args readingRequest
		if err := req.Unmarshal(&args); err != nil {
			return nil, err
		}
		if args.Unit != "" {
			unit = args.Unit
		}
	}
	if unit != unitCelsius && unit != unitFahrenheit {
		return nil, device.Errorf(400, `unit must be "celsius" or "fahrenheit"`)
	}
	r, err := s.read()
	if err != nil {
		return nil, &device.MethodError{Status: 500, Message: "cannot read the temperature: " + err.Error(), Err: err}
	}
	if unit == unitFahrenheit {
		f := round(r.Celsius*9/5+32, 3)
		r.Fahrenheit = &f
	}
	return device.JSONResponse(200, r)
}

// read takes one reading.
func (s *sensor) read() (reading, error) {
	now := s.now()
	r := reading{Source: sourceSimulated, ReadAt: now.UTC().Format(time.RFC3339)}
	if s.path == "" {
		r.Celsius = simulatedCelsius(now)
		return r, nil
	}
	b, err := os.ReadFile(s.path)
	if err != nil {
		return reading{}, err
	}
	c, err := parseMillidegrees(b)
	if err != nil {
		return reading{}, fmt.Errorf("%s: %w", s.path, err)
	}
	r.Celsius, r.Source = c, sourceThermalZone
	return r, nil
}

// parseMillidegrees parses sysfs's temperature format: an integer of
// millidegrees Celsius and a newline.
func parseMillidegrees(b []byte) (float64, error) {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return 0, fmt.Errorf("%w: the file is empty", errBadReading)
	}
	m, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: not an integer of millidegrees: %q", errBadReading, clip(s))
	}
	// Below absolute zero or above what silicon survives is a broken sensor.
	if m < -273150 || m > 200000 {
		return 0, fmt.Errorf("%w: %d millidegrees is out of range", errBadReading, m)
	}
	return float64(m) / 1000, nil
}

// simulatedCelsius is a plausible SoC temperature that drifts slowly
// between 42 and 48 °C over ten minutes, the same for the same time.
func simulatedCelsius(t time.Time) float64 {
	const period = 10 * time.Minute
	phase := float64(t.UnixNano()%int64(period)) / float64(period)
	return round(45+3*math.Sin(2*math.Pi*phase), 3)
}

func round(x float64, decimals int) float64 {
	p := math.Pow10(decimals)
	return math.Round(x*p) / p
}

// clip shortens garbage quoted in an error.
func clip(s string) string {
	const limit = 32
	if len(s) > limit {
		return s[:limit] + "…"
	}
	return s
}
