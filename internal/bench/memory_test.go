package bench

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestParseVmRSS(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		want     int64
		ok       bool
	}{
		{"typical", "Name:\tbench\nVmPeak:\t  9000 kB\nVmRSS:\t    1234 kB\nThreads:\t4\n", 1234 * 1024, true},
		{"zero", "VmRSS: 0 kB\n", 0, true},
		{"missing", "Name:\tbench\n", 0, false},
		{"no unit", "VmRSS:\t1234\n", 0, false},
		{"other unit", "VmRSS:\t1234 MB\n", 0, false},
		{"not a number", "VmRSS:\tlots kB\n", 0, false},
		{"negative", "VmRSS:\t-5 kB\n", 0, false},
		{"empty", "", 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseVmRSS(strings.NewReader(tt.in))
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("parseVmRSS = %d, %v; want %d, ok=%v", got, err, tt.want, tt.ok)
			}
		})
	}
	if _, err := parseVmRSS(strings.NewReader("Name: x\n")); !errors.Is(err, errNoVmRSS) {
		t.Errorf("missing line: err = %v, want errNoVmRSS", err)
	}
}

func FuzzParseVmRSS(f *testing.F) {
	for _, seed := range []string{"VmRSS:\t 1234 kB\n", "VmRSS: 99999999999999999999 kB", "VmRSS:", "Name: a\nVmRSS: 1 kB 2\n"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := parseVmRSS(strings.NewReader(in))
		if err == nil && got < 0 {
			t.Errorf("negative RSS %d from %q", got, in)
		}
	})
}

func TestMeasureMemoryReadsThisProcess(t *testing.T) {
	m := MeasureMemory()
	if m.HeapInuse <= 0 {
		t.Errorf("MeasureMemory() = %+v, want a positive heap", m)
	}
	if _, err := os.Stat("/proc/self/status"); err == nil && m.RSS <= 0 {
		t.Errorf("MeasureMemory() = %+v, want a positive RSS where /proc exists", m)
	}
}
