package mqttsession

import (
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// pingRecorder is the pinger's network as the tests script it: it records
// when each PINGREQ is written and when the pinger fails the connection.
type pingRecorder struct {
	start    time.Time
	mu       sync.Mutex
	writes   []time.Duration // since start, when each PINGREQ was written
	failedAt time.Duration   // since start; zero while the connection lives
	failure  error
	writeFor time.Duration // how long each write takes
}

func (r *pingRecorder) send() error {
	time.Sleep(r.writeFor)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes = append(r.writes, time.Since(r.start))
	return nil
}

func (r *pingRecorder) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failure == nil {
		r.failedAt, r.failure = time.Since(r.start), err
	}
}

func (r *pingRecorder) result() ([]time.Duration, time.Duration, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.writes...), r.failedAt, r.failure
}

// TestPinger runs the pinger on a fake clock: each case scripts when the
// PINGRESPs come and checks when PINGREQs were written and whether, and
// when, the connection was declared dead.
func TestPinger(t *testing.T) {
	const keepAlive, timeout = 10 * time.Second, 4 * time.Second
	tests := []struct {
		name     string
		writeFor time.Duration   // each PINGREQ's write takes this long
		pongs    []time.Duration // since start, when a PINGRESP arrives
		run      time.Duration   // how long to watch
		writes   []time.Duration
		failedAt time.Duration // zero: never
	}{
		{
			name:  "answered pings go once per keep-alive",
			pongs: []time.Duration{10*time.Second + 50*time.Millisecond, 20*time.Second + 50*time.Millisecond, 30*time.Second + 50*time.Millisecond},
			run:   35 * time.Second, writes: []time.Duration{10 * time.Second, 20 * time.Second, 30 * time.Second},
		},
		{
			name: "no PINGRESP within the timeout of the write",
			run:  30 * time.Second, writes: []time.Duration{10 * time.Second}, failedAt: 14 * time.Second,
		},
		{
			name:     "the wait starts once the PINGREQ is written",
			writeFor: 6 * time.Second, // longer than the timeout itself
			pongs:    []time.Duration{19 * time.Second},
			run:      24 * time.Second, writes: []time.Duration{16 * time.Second},
		},
		{
			name:  "a PINGRESP just before the timeout keeps the connection",
			pongs: []time.Duration{14*time.Second - time.Millisecond},
			run:   23 * time.Second, writes: []time.Duration{10 * time.Second, 20 * time.Second},
		},
		{
			name:     "a PINGRESP that comes while the write returns counts",
			writeFor: 2 * time.Second,
			pongs:    []time.Duration{11 * time.Second}, // the write returns at 12 s
			run:      25 * time.Second, writes: []time.Duration{12 * time.Second, 24 * time.Second},
		},
		{
			name:  "an unsolicited PINGRESP changes nothing",
			pongs: []time.Duration{5 * time.Second},
			run:   20 * time.Second, writes: []time.Duration{10 * time.Second}, failedAt: 14 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := &pingRecorder{start: time.Now(), writeFor: tt.writeFor}
				p := startPinger(keepAlive, timeout, r.send, r.fail)
				for _, at := range tt.pongs {
					time.Sleep(at - time.Since(r.start))
					p.pong()
				}
				time.Sleep(tt.run - time.Since(r.start))
				synctest.Wait()
				p.stop()
				writes, failedAt, failure := r.result()
				if diff := cmp.Diff(tt.writes, writes); diff != "" {
					t.Errorf("PINGREQs written at (-want +got):\n%s", diff)
				}
				if failedAt != tt.failedAt {
					t.Errorf("failed at %v (%v), want %v", failedAt, failure, tt.failedAt)
				}
				if failure != nil && !errors.Is(failure, errNoPingresp) {
					t.Errorf("failure = %v, want errNoPingresp", failure)
				}
			})
		})
	}
}

// TestPingerStopJoinsAWrite: stop waits for a PINGREQ whose write is in
// progress, and no PINGREQ follows it.
func TestPingerStopJoinsAWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		writing := make(chan struct{})
		var writes int
		p := startPinger(time.Second, time.Second, func() error {
			writes++
			close(writing)
			<-release
			return errors.New("closed")
		}, func(error) {})
		<-writing
		stopped := make(chan struct{})
		go func() { p.stop(); close(stopped) }() // joined below
		synctest.Wait()
		select {
		case <-stopped:
			t.Fatal("stop returned while a PINGREQ was being written")
		default:
		}
		close(release)
		<-stopped
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if writes != 1 {
			t.Errorf("%d PINGREQs written, want 1", writes)
		}
	})
}
