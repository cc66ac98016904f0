package main

import (
	"context"
	"log/slog"
	"sync"

	"github.com/directmethods/iotdevice/device"
)

// Pin drives the fan's hardware. speed is 1 to 3 when on, 0 when off.
type Pin interface {
	Set(on bool, speed int) error
}

// simulatedPin stands in for hardware: it logs each change, so the
// program runs on any machine.
type simulatedPin struct{ log *slog.Logger }

func (p simulatedPin) Set(on bool, speed int) error {
	p.log.Info("fan pin changed (simulated)", "on", on, "speed", speed)
	return nil
}

// fanState is what every method answers with.
type fanState struct {
	On    bool `json:"on"`
	Speed int  `json:"speed"`
}

// fan owns the fan's state and its methods.
type fan struct {
	pin Pin

	mu    sync.Mutex
	state fanState
}

func newFan(pin Pin) *fan { return &fan{pin: pin} }

// methods returns the fan's direct methods: turnOnFan (optional payload
// {"speed": 1-3}), turnOffFan and getFanState.
func (f *fan) methods() *device.MethodMux {
	mux := device.NewMethodMux()
	mux.HandleFunc("turnOnFan", f.turnOn)
	mux.HandleFunc("turnOffFan", f.turnOff)
	mux.HandleFunc("getFanState", f.get)
	return mux
}

func (f *fan) turnOn(_ context.Context, req *device.MethodRequest) (*device.MethodResponse, error) {
	speed := 0 // keep the current speed, or 1
	if len(req.Payload) > 0 && string(req.Payload) != "null" {
		var args struct {
			Speed *int `json:"speed"`
		}
		if err := req.Unmarshal(&args); err != nil {
			return nil, err
		}
		if args.Speed != nil {
			if *args.Speed < 1 || *args.Speed > 3 {
				return nil, device.Errorf(400, "speed must be 1, 2 or 3")
			}
			speed = *args.Speed
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock() // held across the pin write so changes apply in order
	if speed == 0 {
		speed = max(f.state.Speed, 1)
	}
	return f.apply(fanState{On: true, Speed: speed})
}

func (f *fan) turnOff(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.apply(fanState{On: false, Speed: 0})
}

func (f *fan) get(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return device.JSONResponse(200, f.state)
}

// apply drives the pin and records the new state; f.mu is held.
func (f *fan) apply(s fanState) (*device.MethodResponse, error) {
	if err := f.pin.Set(s.On, s.Speed); err != nil {
		return nil, device.Errorf(500, "the fan did not respond: %v", err)
	}
	f.state = s
	return device.JSONResponse(200, s)
}

// shutdown switches the fan off when the program stops.
func (f *fan) shutdown() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = fanState{}
	return f.pin.Set(false, 0)
}
