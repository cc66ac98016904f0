package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/directmethods/iotdevice/device"
)

func TestIsRaspberryPi(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pi := write("pi", "Raspberry Pi 4 Model B Rev 1.4\x00")
	other := write("other", "Pine64 RockPro64\x00")
	empty := write("empty", "")
	absent := filepath.Join(dir, "absent")
	tests := []struct {
		name  string
		files []string
		want  bool
	}{
		{"pi", []string{pi}, true},
		{"second file", []string{absent, pi}, true},
		{"other board", []string{other}, false},
		{"empty", []string{empty}, false},
		{"no file", []string{absent}, false},
		{"none given", nil, false},
	}
	for _, tt := range tests {
		if got := isRaspberryPi(tt.files...); got != tt.want {
			t.Errorf("%s: isRaspberryPi = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestExecCommand(t *testing.T) {
	if _, err := execCommand("  "); !errors.Is(err, errNoCommand) {
		t.Errorf("execCommand of blanks = %v, want errNoCommand", err)
	}
	ok, err := execCommand("true")
	if err != nil {
		t.Fatal(err)
	}
	if err := ok(t.Context()); err != nil {
		t.Errorf("true = %v", err)
	}
	fail, err := execCommand("false --reboot")
	if err != nil {
		t.Fatal(err)
	}
	if err := fail(t.Context()); err == nil {
		t.Error("false succeeded")
	}
}

// FuzzParseDelay checks that any payload gets a delay within bounds or a
// 400, never a panic.
func FuzzParseDelay(f *testing.F) {
	for _, s := range []string{"", "null", "{}", `{"delaySeconds":5}`, `{"delaySeconds":-1}`, `{"delaySeconds":1e9}`, `[]`, `"x"`, `{"delaySeconds":null}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		req := &device.MethodRequest{}
		if payload != "" {
			req.Payload = []byte(payload)
		}
		d, err := parseDelay(req)
		if err != nil {
			if !isStatus(err, 400) {
				t.Fatalf("parseDelay(%q) = %v, want a 400", payload, err)
			}
			return
		}
		if d < 0 || d > maxDelaySeconds {
			t.Fatalf("parseDelay(%q) = %d, out of bounds", payload, d)
		}
	})
}
