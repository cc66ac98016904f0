package bench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// Memory is a process's memory at one moment, after a full GC.
type Memory struct {
	HeapInuse  int64 // runtime.MemStats.HeapInuse, bytes
	HeapAlloc  int64 // runtime.MemStats.HeapAlloc, bytes: live objects
	StackInuse int64 // runtime.MemStats.StackInuse, bytes: goroutine stacks
	RSS        int64 // VmRSS, bytes; 0 where /proc is missing
	Goroutines int
}

// MeasureMemory collects garbage, returns freed memory to the OS and reads
// this process's heap in use and resident set.
func MeasureMemory() Memory {
	debug.FreeOSMemory() // runs a GC first
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss, _ := ProcessRSS(os.Getpid())
	return Memory{HeapInuse: int64(ms.HeapInuse), HeapAlloc: int64(ms.HeapAlloc), StackInuse: int64(ms.StackInuse), RSS: rss, Goroutines: runtime.NumGoroutine()}
}

// ProcessRSS returns the resident set size of process pid, from
// /proc/{pid}/status.
func ProcessRSS(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("bench: read RSS: %w", err)
	}
	defer f.Close()
	return parseVmRSS(f)
}

// errNoVmRSS reports a status file without a VmRSS line.
var errNoVmRSS = errors.New("bench: no VmRSS line in /proc status")

// parseVmRSS reads the "VmRSS:   1234 kB" line of a /proc status file.
func parseVmRSS(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		value, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		fields := strings.Fields(value)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("bench: bad VmRSS line %q", sc.Text())
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil || kb < 0 || kb > 1<<40 {
			return 0, fmt.Errorf("bench: bad VmRSS value %q", fields[0])
		}
		return kb * 1024, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("bench: read RSS: %w", err)
	}
	return 0, errNoVmRSS
}
