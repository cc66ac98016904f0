package localhub

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestDPSRestart keeps the ID scope, the service key, the enrollments and
// the operations across a restart: a device that registered before the
// restart polls after it and is assigned; it registers again as a device
// DPS knows.
func TestDPSRestart(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, DPS: DPSOptions{RetryAfter: time.Second}}
	h, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	scope, serviceCS := h.IDScope(), h.DPSConnectionString()
	if !regexp.MustCompile(`^0ne[0-9A-F]{8}$`).MatchString(scope) {
		t.Errorf("ID scope %q is not 0ne and 8 hex digits", scope)
	}
	g, err := h.PutEnrollmentGroup("g", EnrollmentSpec{})
	if err != nil {
		t.Fatal(err)
	}
	key := groupDeviceKey(t, g.PrimaryKey, "dev-1")
	token := dpsToken(t, scope, "dev-1", key, time.Now().Add(time.Hour))
	d := newDPSDevice(t, h, "https", "dev-1", token, nil)
	d.apiVersion = "2021-06-01"
	r := d.register(t, "")
	if r.status != http.StatusAccepted {
		t.Fatalf("register = %v", r)
	}
	h.Close()

	h2 := startHub(t, opts)
	if h2.IDScope() != scope || h2.DPSConnectionString() != serviceCS {
		t.Errorf("after a restart: scope %s and %s, want %s and %s", h2.IDScope(), h2.DPSConnectionString(), scope, serviceCS)
	}
	if e, ok := h2.LookupEnrollment(true, "g"); !ok || e.PrimaryKey != g.PrimaryKey || e.ETag != g.ETag {
		t.Errorf("group after a restart: %+v, %v; want %+v", e, ok, g)
	}
	d2 := newDPSDevice(t, h2, "mqtt", "dev-1", token, nil)
	d2.apiVersion = "2021-06-01"
	waitRetryAfter(t, r.retryAfter)
	final := d2.poll(t, r.op.OperationID)
	if final.status != http.StatusOK || final.op.Status != statusAssigned || final.op.RegistrationState.Substatus != substatusInitial {
		t.Fatalf("poll after a restart = %v", final)
	}
	serveOneMethod(t, h2, "dev-1", key, nil)
	if again := d2.provision(t, ""); again.status != http.StatusOK || again.op.RegistrationState.Substatus != substatusReprovisioned {
		t.Errorf("registering again after a restart = %v, want %s", again, substatusReprovisioned)
	}
	for name, want := range map[string]string{idScopeFileName: scope + "\n", dpsCSFileName: serviceCS + "\n"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", name, b, err, want)
		}
	}
	for name, mode := range map[string]os.FileMode{dpsStateFileName: 0o600, dpsCSFileName: 0o600, idScopeFileName: 0o644} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, %v; want %v", name, fi.Mode().Perm(), err, mode)
		}
	}
}

// TestDPSStateRefused refuses to start on a dps.json that holds what the
// service API would refuse.
func TestDPSStateRefused(t *testing.T) {
	for _, tt := range []struct{ name, content, want string }{
		{"not JSON", `{`, "parse dps.json"},
		{"bad service key", `{"idScope":"0ne00000001","serviceKey":"***"}`, "serviceKey"},
		{"bad enrollment", `{"idScope":"0ne00000001","serviceKey":"AAAA","enrollments":[{"registrationId":"a","attestation":{"type":"tpm"}}]}`, `enrollment "a"`},
		{"bad registration", `{"idScope":"0ne00000001","serviceKey":"AAAA","registrations":[{"state":{"registrationId":"-x"}}]}`, "invalid id"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, dpsStateFileName), []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			h, err := Start(t.Context(), Options{Dir: dir})
			if err == nil {
				h.Close()
				t.Fatal("Start accepted the file")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Start: %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestDPSRateLimiter(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	l := newDPSRateLimiter(60) // one a second, 60 saved
	type step struct {
		at       time.Duration
		ok       bool
		wantWait time.Duration
	}
	var steps []step
	for range 60 {
		steps = append(steps, step{0, true, 0})
	}
	steps = append(steps,
		step{0, false, time.Second},
		step{500 * time.Millisecond, false, 500 * time.Millisecond},
		step{time.Second, true, 0},
		step{time.Second, false, time.Second},
		step{-time.Hour, false, time.Second}, // a clock that goes back earns nothing
		step{time.Hour, true, 0},
	)
	var got, want []step
	for _, s := range steps {
		ok, wait := l.take(t0.Add(s.at))
		got = append(got, step{s.at, ok, wait.Round(time.Millisecond)})
		want = append(want, s)
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(step{})); diff != "" {
		t.Errorf("take (-want +got):\n%s", diff)
	}
	var unlimited *dpsRateLimiter
	if ok, _ := unlimited.take(t0); !ok {
		t.Error("a nil limiter refused")
	}
}

func TestWholeSeconds(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{
		0: time.Second, time.Millisecond: time.Second, time.Second: time.Second,
		1500 * time.Millisecond: 2 * time.Second, 3 * time.Second: 3 * time.Second,
	} {
		if got := wholeSeconds(in); got != want {
			t.Errorf("wholeSeconds(%v) = %v, want %v", in, got, want)
		}
	}
}
