package bench

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"time"
)

// Devices under test can run in a child process, so that the CPU time
// they spend is theirs alone, not the hub's or the callers'. The parent
// sends a childDeviceSpec on the child's standard input, as JSON, and then
// one childRequest per question; the child answers each with one
// childReply on its standard output. Closing the child's standard input
// closes its devices and ends it.

// childDeviceSpec is what the child is to connect, and to where. It
// carries keys: it only ever crosses the pipe between the two processes.
type childDeviceSpec struct {
	Kind              string        `json:"kind"`
	Transport         string        `json:"transport"`
	MQTTPort          int           `json:"mqtt_port"`
	AMQPPort          int           `json:"amqp_port"`
	HTTPSPort         int           `json:"https_port"`
	RootsPEM          string        `json:"roots_pem,omitempty"`
	ConnectionStrings []string      `json:"connection_strings"`
	ConnectTimeout    time.Duration `json:"connect_timeout"`
	CPUProfile        string        `json:"cpu_profile,omitempty"`
}

// childRequest asks the child for its CPU time so far.
type childRequest struct {
	Op string `json:"op"` // "cpu"
}

// childReply answers the spec (once the devices are connected) and each
// request.
type childReply struct {
	Error string        `json:"error,omitempty"`
	CPU   time.Duration `json:"cpu_ns,omitempty"`
}

// ErrNoDeviceCPU is returned by ServeChildDevices where a process cannot
// read its own CPU time.
var ErrNoDeviceCPU = errors.New("bench: this platform cannot measure a process's CPU time")

// ServeChildDevices is the child side of devices in their own process: it
// reads a spec from in, connects the devices it names, says so on out,
// then answers requests for its CPU time (user and system, of the whole
// process) until in reaches end of file, and closes the devices.
func ServeChildDevices(ctx context.Context, in io.Reader, out io.Writer) error {
	dec, enc := json.NewDecoder(in), json.NewEncoder(out)
	var spec childDeviceSpec
	if err := dec.Decode(&spec); err != nil {
		return fmt.Errorf("bench: child devices: read spec: %w", err)
	}
	t := &Target{MQTTPort: spec.MQTTPort, AMQPPort: spec.AMQPPort, HTTPSPort: spec.HTTPSPort, ConnectionStrings: spec.ConnectionStrings}
	if spec.RootsPEM != "" {
		t.Roots = x509.NewCertPool()
		if !t.Roots.AppendCertsFromPEM([]byte(spec.RootsPEM)) {
			return errors.New("bench: child devices: no PEM certificate in the roots")
		}
	}
	cfg := Config{Transport: spec.Transport, Device: spec.Kind, Devices: len(spec.ConnectionStrings), ConnectTimeout: spec.ConnectTimeout}.withDefaults()
	devices, _, err := connectAll(ctx, cfg, t)
	if err != nil {
		enc.Encode(childReply{Error: err.Error()})
		return err
	}
	defer closeAll(devices)
	if spec.CPUProfile != "" {
		stop, err := startCPUProfile(spec.CPUProfile)
		if err != nil {
			enc.Encode(childReply{Error: err.Error()})
			return err
		}
		defer stop()
	}
	if err := enc.Encode(childReply{}); err != nil {
		return fmt.Errorf("bench: child devices: %w", err)
	}
	for {
		var req childRequest
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("bench: child devices: read request: %w", err)
		}
		var reply childReply
		switch req.Op {
		case "cpu":
			if reply.CPU, err = processCPU(); err != nil {
				reply.Error = err.Error()
			}
		default:
			reply.Error = fmt.Sprintf("bench: child devices: unknown request %q", req.Op)
		}
		if err := enc.Encode(reply); err != nil {
			return fmt.Errorf("bench: child devices: %w", err)
		}
	}
}

// deviceSet is the devices of a run, in this process or in a child.
type deviceSet interface {
	// cpu returns the CPU time the devices have spent so far, or
	// ErrNoDeviceCPU when they share this process.
	cpu() (time.Duration, error)
	close()
}

// localDevices are devices in this process.
type localDevices []Device

func (localDevices) cpu() (time.Duration, error) { return 0, ErrNoDeviceCPU }
func (d localDevices) close()                    { closeAll(d) }

// childDevices are devices in a child process.
type childDevices struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	enc   *json.Encoder
	dec   *json.Decoder
}

// childDevicesStop bounds how long close waits for the child to close its
// devices and exit before killing it.
const childDevicesStop = 30 * time.Second

// startChildDevices runs cfg.DeviceCommand, has it connect cfg.Devices
// devices of cfg.Device to t and returns once they are connected.
func startChildDevices(ctx context.Context, t *Target, cfg Config) (*childDevices, error) {
	if t.Roots != nil && len(t.RootsPEM) == 0 {
		return nil, errors.New("bench: devices in a child process need Target.RootsPEM")
	}
	cmd, stdin, stdout, err := startChild(cfg.DeviceCommand[0], cfg.DeviceCommand[1:]...)
	if err != nil {
		return nil, fmt.Errorf("bench: child devices: %w", err)
	}
	c := &childDevices{cmd: cmd, stdin: stdin, enc: json.NewEncoder(stdin), dec: json.NewDecoder(stdout)}
	// The child bounds its connecting by ConnectTimeout; ctx kills it.
	stop := context.AfterFunc(ctx, func() { cmd.Process.Kill() })
	defer stop()
	spec := childDeviceSpec{
		Kind: cfg.Device, Transport: cfg.Transport, MQTTPort: t.MQTTPort, AMQPPort: t.AMQPPort, HTTPSPort: t.HTTPSPort,
		RootsPEM: string(t.RootsPEM), ConnectionStrings: t.ConnectionStrings[:cfg.Devices], ConnectTimeout: cfg.ConnectTimeout,
		CPUProfile: cfg.DeviceCPUProfile,
	}
	// A command that is not a bench child may end before it reads the
	// spec or after: either way the missing reply says what went wrong.
	sendErr := c.enc.Encode(spec)
	_, err = c.reply()
	if err == nil && sendErr != nil {
		err = fmt.Errorf("bench: child devices: send spec: %w", sendErr)
	}
	if err != nil {
		c.close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("bench: child devices: %w", context.Cause(ctx))
		}
		if sendErr != nil {
			err = fmt.Errorf("%w (sending the spec failed too: %v)", err, sendErr)
		}
		return nil, err
	}
	return c, nil
}

// reply reads the child's next reply.
func (c *childDevices) reply() (childReply, error) {
	var r childReply
	if err := c.dec.Decode(&r); err != nil {
		return r, fmt.Errorf("bench: child devices: read reply: %w", err)
	}
	if r.Error != "" {
		return r, fmt.Errorf("bench: child devices: %s", r.Error)
	}
	return r, nil
}

// cpu asks the child for its CPU time.
func (c *childDevices) cpu() (time.Duration, error) {
	if err := c.enc.Encode(childRequest{Op: "cpu"}); err != nil {
		return 0, fmt.Errorf("bench: child devices: %w", err)
	}
	r, err := c.reply()
	return r.CPU, err
}

// close closes the child's standard input, which makes it close its
// devices and exit, and waits for it, killing it after childDevicesStop.
func (c *childDevices) close() {
	c.stdin.Close()
	kill := time.AfterFunc(childDevicesStop, func() { c.cmd.Process.Kill() })
	defer kill.Stop()
	c.cmd.Wait()
}
