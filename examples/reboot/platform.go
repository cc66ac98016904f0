package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// modelFiles name the board; on a Raspberry Pi they read like
// "Raspberry Pi 4 Model B Rev 1.4".
var modelFiles = []string{"/proc/device-tree/model", "/sys/firmware/devicetree/base/model"}

// isRaspberryPi reports whether one of files names a Raspberry Pi.
func isRaspberryPi(files ...string) bool {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && bytes.Contains(b, []byte("Raspberry Pi")) {
			return true
		}
	}
	return false
}

// errNoCommand is returned for an empty -command.
var errNoCommand = errors.New("reboot: the reboot command is empty")

// execCommand returns a commandFunc running the command line (split on
// spaces, run without a shell).
func execCommand(commandLine string) (commandFunc, error) {
	argv := strings.Fields(commandLine)
	if len(argv) == 0 {
		return nil, errNoCommand
	}
	return func(ctx context.Context) error {
		out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("reboot: %s: %w: %s", commandLine, err, clip(out))
		}
		return nil
	}, nil
}

// clip shortens a command's output for a log line.
func clip(b []byte) string {
	const limit = 200
	s := strings.TrimSpace(string(b))
	if len(s) > limit {
		return s[:limit] + "…"
	}
	return s
}
