package main

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
)

const testConnectionString = "HostName=hub.example;DeviceId=fan-1;SharedAccessKey=MDEyMzQ1Njc4OWFiY2RlZg=="

// noGPIO is a machine whose GPIO drivers do not load.
var noGPIO = gpioHost{
	init:   func() error { return errors.New("no /dev/gpiomem") },
	byName: func(string) gpio.PinIO { return nil },
}

// fakeGPIO is a machine with the given pins.
func fakeGPIO(pins ...*fakePin) gpioHost {
	return gpioHost{
		init: func() error { return nil },
		byName: func(name string) gpio.PinIO {
			for _, p := range pins {
				if p.name == name {
					return p
				}
			}
			return nil
		},
	}
}

// fakePin records what a GPIO output was told. Methods it does not
// override fail as gpio.INVALID's do.
type fakePin struct {
	gpio.PinIO
	name   string
	noPWM  bool
	outErr error
	calls  []string
}

func newFakePin(name string) *fakePin { return &fakePin{PinIO: gpio.INVALID, name: name} }

func (p *fakePin) Name() string { return p.name }

func (p *fakePin) Out(l gpio.Level) error {
	if p.outErr != nil {
		return p.outErr
	}
	p.calls = append(p.calls, "out "+l.String())
	return nil
}

func (p *fakePin) PWM(d gpio.Duty, f physic.Frequency) error {
	if p.noPWM {
		p.calls = append(p.calls, "pwm refused")
		return errors.New("pwm: not supported")
	}
	p.calls = append(p.calls, "pwm "+d.String()+" "+f.String())
	return nil
}

func TestDutyForSpeed(t *testing.T) {
	tests := []struct {
		speed int
		want  gpio.Duty
		text  string
	}{
		{0, 0, "0%"},
		{1, gpio.DutyMax * 33 / 100, "33%"},
		{2, gpio.DutyMax * 66 / 100, "66%"},
		{3, gpio.DutyMax, "100%"},
		{4, gpio.DutyMax, "100%"},
		{-1, 0, "0%"},
	}
	for _, tt := range tests {
		got := dutyForSpeed(tt.speed)
		if got != tt.want || got.String() != tt.text {
			t.Errorf("dutyForSpeed(%d) = %d (%s), want %d (%s)", tt.speed, got, got, tt.want, tt.text)
		}
	}
}

func TestChoosePin(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	tests := []struct {
		name      string
		host      gpioHost
		pin       string
		simulate  bool
		wantSim   bool
		wantErr   error
		wantCalls []string
	}{
		{name: "no pin simulates", host: noGPIO, wantSim: true},
		{name: "-simulate wins over -pin", host: noGPIO, pin: "GPIO18", simulate: true, wantSim: true},
		{name: "no GPIO is an error", host: noGPIO, pin: "GPIO18", wantErr: errNoGPIO},
		{name: "unknown pin is an error", host: fakeGPIO(newFakePin("GPIO18")), pin: "GPIO99", wantErr: errPinNotFound},
		{name: "real pin starts off", host: fakeGPIO(newFakePin("GPIO18")), pin: "GPIO18", wantCalls: []string{"out Low"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pin, err := choosePin(tt.host, tt.pin, tt.simulate, log)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("choosePin = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if _, sim := pin.(simulatedPin); sim != tt.wantSim {
				t.Errorf("choosePin = %T, simulated %v, want %v", pin, sim, tt.wantSim)
			}
			if g, ok := pin.(*gpioPin); ok {
				if diff := cmp.Diff(tt.wantCalls, g.pin.(*fakePin).calls); diff != "" {
					t.Errorf("pin calls (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestChoosePinReportsAFailingPin(t *testing.T) {
	p := newFakePin("GPIO18")
	p.outErr = errors.New("permission denied")
	if _, err := choosePin(fakeGPIO(p), "GPIO18", false, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("choosePin with a pin that cannot be set succeeded")
	}
}

func TestGPIOPinSet(t *testing.T) {
	type step struct {
		on    bool
		speed int
	}
	steps := []step{{true, 1}, {true, 2}, {true, 3}, {false, 0}}
	tests := []struct {
		name  string
		noPWM bool
		want  []string
	}{
		{"with PWM", false, []string{"pwm 33% 25kHz", "pwm 66% 25kHz", "out High", "out Low"}},
		// Without PWM every speed is full speed, and PWM is tried once.
		{"without PWM", true, []string{"pwm refused", "out High", "out High", "out High", "out Low"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fp := newFakePin("GPIO18")
			fp.noPWM = tt.noPWM
			p := &gpioPin{pin: fp, log: slog.New(slog.DiscardHandler), pwm: true}
			for _, s := range steps {
				if err := p.Set(s.on, s.speed); err != nil {
					t.Fatalf("Set(%v, %d): %v", s.on, s.speed, err)
				}
			}
			if diff := cmp.Diff(tt.want, fp.calls); diff != "" {
				t.Errorf("pin calls (-want +got):\n%s", diff)
			}
			if p.pwm == tt.noPWM {
				t.Errorf("pwm still tried = %v, want %v", p.pwm, !tt.noPWM)
			}
		})
	}
}
