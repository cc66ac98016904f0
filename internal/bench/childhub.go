package bench

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/directmethods/iotdevice/internal/localhub"
)

// HubInfo is what a child hub process tells its parent, as one JSON line
// on its standard output. It carries keys: it only ever crosses the pipe
// between the two processes.
type HubInfo struct {
	MQTTPort          int      `json:"mqtt_port"`
	AMQPPort          int      `json:"amqp_port"`
	HTTPSPort         int      `json:"https_port"`
	CACertPEM         string   `json:"ca_pem"`
	Service           string   `json:"service"`
	ConnectionStrings []string `json:"connection_strings"`
}

// ServeChildHub is the child side of a hub in its own process: it starts a
// local hub with devices identities, writes its HubInfo to out, and runs
// until in reaches end of file (the parent closed the pipe or exited) or
// ctx ends.
func ServeChildHub(ctx context.Context, devices int, in io.Reader, out io.Writer) error {
	if _, err := RaiseFileLimit(); err != nil {
		return err
	}
	hub, t, err := StartLocalHub(ctx, devices)
	if err != nil {
		return err
	}
	defer hub.Close()
	info := HubInfo{
		MQTTPort: t.MQTTPort, AMQPPort: t.AMQPPort, HTTPSPort: t.HTTPSPort,
		CACertPEM: string(hub.CACertPEM()), Service: hub.ServiceConnectionString(),
		ConnectionStrings: t.ConnectionStrings,
	}
	if err := json.NewEncoder(out).Encode(info); err != nil {
		return fmt.Errorf("bench: child hub: write info: %w", err)
	}
	eof := make(chan struct{})
	// Owned by ServeChildHub: ends at end of file of in. When ctx ends
	// first it is left blocked on in, which the process's exit ends.
	go func() {
		io.Copy(io.Discard, in)
		close(eof)
	}()
	select {
	case <-eof:
		return nil
	case <-ctx.Done():
		return nil
	}
}

// ChildHub is a local hub running in a child process, so that a fleet's
// memory is measured without the hub's.
type ChildHub struct {
	Target *Target
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	done   chan error // cmd.Wait's result
}

// childHubStop bounds how long Close waits for the child to exit before
// killing it.
const childHubStop = 30 * time.Second

// StartChildHub runs exe with args (which must make it call ServeChildHub)
// and returns once the child's hub is listening.
func StartChildHub(ctx context.Context, exe string, args ...string) (*ChildHub, error) {
	cmd, stdin, stdout, err := startChild(exe, args...)
	if err != nil {
		return nil, fmt.Errorf("bench: child hub: %w", err)
	}
	c := &ChildHub{cmd: cmd, stdin: stdin, done: make(chan error, 1)}
	infoc := make(chan HubInfo, 1)
	// Owned by c: reads the info line, then waits for the child to exit;
	// joined by Close.
	go func() {
		var info HubInfo
		if json.NewDecoder(bufio.NewReader(stdout)).Decode(&info) == nil {
			infoc <- info
		}
		io.Copy(io.Discard, stdout) // until the child exits and closes it
		c.done <- cmd.Wait()
	}()
	select {
	case info := <-infoc:
		t, err := info.target()
		if err != nil {
			c.Close()
			return nil, err
		}
		c.Target = t
		return c, nil
	case err := <-c.done:
		c.done <- err
		c.Close()
		return nil, fmt.Errorf("bench: child hub exited before it was ready: %v", err)
	case <-ctx.Done():
		c.Close()
		return nil, fmt.Errorf("bench: child hub did not start: %w", context.Cause(ctx))
	}
}

// startChild starts exe with args, with pipes to its standard input and
// output; its standard error is this process's.
func startChild(exe string, args ...string) (cmd *exec.Cmd, stdin io.WriteCloser, stdout io.ReadCloser, err error) {
	cmd = exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	if stdin, err = cmd.StdinPipe(); err != nil {
		return nil, nil, nil, err
	}
	if stdout, err = cmd.StdoutPipe(); err != nil {
		return nil, nil, nil, err
	}
	if err = cmd.Start(); err != nil {
		return nil, nil, nil, err
	}
	return cmd, stdin, stdout, nil
}

// target turns the child's info into a Target.
func (info HubInfo) target() (*Target, error) {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(info.CACertPEM)) {
		return nil, errors.New("bench: child hub sent no CA certificate")
	}
	service, err := localhub.NewServiceClient(fmt.Sprintf("https://127.0.0.1:%d", info.HTTPSPort), info.Service, roots)
	if err != nil {
		return nil, err
	}
	return &Target{
		Service: service, Roots: roots, RootsPEM: []byte(info.CACertPEM), MQTTPort: info.MQTTPort, AMQPPort: info.AMQPPort, HTTPSPort: info.HTTPSPort,
		ConnectionStrings: info.ConnectionStrings,
	}, nil
}

// RSS returns the child's resident set size.
func (c *ChildHub) RSS() (int64, error) { return ProcessRSS(c.cmd.Process.Pid) }

// Close asks the child to stop by closing its standard input, and kills it
// if it has not exited within childHubStop.
func (c *ChildHub) Close() error {
	c.stdin.Close()
	timer := time.NewTimer(childHubStop)
	defer timer.Stop()
	var err error
	select {
	case err = <-c.done:
	case <-timer.C:
		c.cmd.Process.Kill()
		err = <-c.done
	}
	c.done <- err // Close is idempotent
	if err != nil {
		return fmt.Errorf("bench: child hub: %w", err)
	}
	return nil
}
