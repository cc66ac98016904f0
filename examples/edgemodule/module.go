package main

import (
	"context"
	"math"
	"time"

	"github.com/directmethods/iotdevice/device"
)

// module is the module's state: a thermometer, simulated unless told
// otherwise.
type module struct {
	celsius func() float64
}

// newModule returns a module reading celsius; nil simulates a room that
// drifts between 19 °C and 23 °C over an hour.
func newModule(celsius func() float64) *module {
	if celsius == nil {
		celsius = func() float64 {
			phase := float64(time.Now().Unix()%3600) / 3600 * 2 * math.Pi
			return math.Round((21+2*math.Sin(phase))*10) / 10
		}
	}
	return &module{celsius: celsius}
}

// methods returns the module's direct methods.
func (m *module) methods() *device.MethodMux {
	mux := device.NewMethodMux()
	mux.HandleFunc("echo", func(_ context.Context, req *device.MethodRequest) (*device.MethodResponse, error) {
		return &device.MethodResponse{Status: 200, Payload: req.Payload}, nil
	})
	mux.HandleFunc("getTemperature", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
		return device.JSONResponse(200, map[string]float64{"celsius": m.celsius()})
	})
	return mux
}
