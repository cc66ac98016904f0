package main

import (
	"errors"
	"fmt"
	"log/slog"

	"periph.io/x/conn/v3/driver/driverreg"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/physic"
)

// pwmFrequency is the PWM frequency for speeds below full: 25 kHz, the
// frequency of 4-wire PC fans, above what people hear.
const pwmFrequency = 25 * physic.KiloHertz

var (
	// errNoGPIO means the machine's GPIO drivers could not be loaded.
	errNoGPIO = errors.New("fan: no GPIO on this machine")
	// errPinNotFound means the named pin does not exist here.
	errPinNotFound = errors.New("fan: GPIO pin not found")
)

// gpioHost finds pins; the functions are periph.io's in the program and
// fakes in tests.
type gpioHost struct {
	init   func() error                 // loads the host's GPIO drivers
	byName func(name string) gpio.PinIO // nil when there is no such pin
}

// periphHost is the real machine's GPIO, through periph.io: the drivers
// of drivers.go, looked up by gpioreg.ByName.
var periphHost = gpioHost{
	init: func() error {
		_, err := driverreg.Init()
		return err
	},
	byName: gpioreg.ByName,
}

// choosePin returns the pin that drives the fan: the simulated one with
// -simulate or without -pin, else the named GPIO, switched off. A named
// pin that cannot be opened is an error: the user asked for real hardware.
func choosePin(h gpioHost, name string, simulate bool, log *slog.Logger) (Pin, error) {
	if simulate || name == "" {
		log.Info("using a simulated fan pin", "pin", name)
		return simulatedPin{log: log}, nil
	}
	if err := h.init(); err != nil {
		return nil, fmt.Errorf("%w: %w (use -simulate to run without one)", errNoGPIO, err)
	}
	p := h.byName(name)
	if p == nil {
		return nil, fmt.Errorf("%w: %q (names look like GPIO18; use -simulate to run without one)", errPinNotFound, name)
	}
	pin := &gpioPin{pin: p, log: log, pwm: true}
	if err := pin.Set(false, 0); err != nil {
		return nil, fmt.Errorf("fan: open %s: %w", name, err)
	}
	log.Info("fan on GPIO", "pin", p.Name())
	return pin, nil
}

// gpioPin drives a GPIO output: low when off, high at full speed, PWM at
// lower speeds while the pin accepts it. It is not safe for concurrent
// use; the fan serializes its calls.
type gpioPin struct {
	pin gpio.PinOut
	log *slog.Logger
	pwm bool // false once the pin has refused PWM
}

// Set implements Pin.
func (p *gpioPin) Set(on bool, speed int) error {
	if !on {
		return p.pin.Out(gpio.Low)
	}
	duty := dutyForSpeed(speed)
	if duty < gpio.DutyMax && p.pwm {
		err := p.pin.PWM(duty, pwmFrequency)
		if err == nil {
			return nil
		}
		p.pwm = false
		p.log.Warn("the pin does not support PWM here: the fan runs at full speed whatever the speed asked", "pin", p.pin.Name(), "err", err)
	}
	return p.pin.Out(gpio.High)
}

// dutyForSpeed maps speed 1, 2, 3 to a duty cycle of 33, 66 and 100 %.
func dutyForSpeed(speed int) gpio.Duty {
	switch {
	case speed <= 0:
		return 0
	case speed >= 3:
		return gpio.DutyMax
	}
	return gpio.Duty(int64(speed) * 33 * int64(gpio.DutyMax) / 100)
}
