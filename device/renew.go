package device

import (
	"context"
	"sync"
	"time"

	"github.com/directmethods/iotdevice/sas"
)

// renewAt is the share of a token's lifetime after which it is renewed.
const renewAt = 0.8

// issuedToken is a token with the times it was issued and expires.
type issuedToken struct {
	token          string
	issued, expiry time.Time
}

// recordingCredential wraps the user's credential for one connection: it
// remembers the lifetime of the token the transport presented, so the
// client knows when to renew, and can hand the transport a token obtained
// beforehand (during renewal).
type recordingCredential struct {
	sas.Credential

	mu      sync.Mutex
	preload *issuedToken
	current issuedToken
}

// Token returns the preloaded token once, else a new one from the wrapped
// credential, and records it.
func (r *recordingCredential) Token(ctx context.Context, resource string) (string, time.Time, error) {
	r.mu.Lock()
	if p := r.preload; p != nil {
		r.preload, r.current = nil, *p
		r.mu.Unlock()
		return p.token, p.expiry, nil
	}
	r.mu.Unlock()
	tok, expiry, err := r.Credential.Token(ctx, resource)
	if err != nil {
		return "", time.Time{}, err
	}
	r.mu.Lock()
	r.current = issuedToken{token: tok, issued: time.Now(), expiry: expiry}
	r.mu.Unlock()
	return tok, expiry, nil
}

// lifetime returns when the current token was issued and expires; zero
// times for certificate credentials.
func (r *recordingCredential) lifetime() (issued, expiry time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current.issued, r.current.expiry
}

func (r *recordingCredential) expiryTime() time.Time {
	_, e := r.lifetime()
	return e
}

// fresh obtains a new token from the wrapped credential without recording
// it. It returns nil when the new token expires no later than the current
// one: the credential cannot renew (a fixed token).
func (r *recordingCredential) fresh(ctx context.Context, resource string) (*issuedToken, error) {
	tok, expiry, err := r.Credential.Token(ctx, resource)
	if err != nil {
		return nil, err
	}
	if !expiry.After(r.expiryTime()) {
		return nil, nil
	}
	return &issuedToken{token: tok, issued: time.Now(), expiry: expiry}, nil
}

// renewTimer fires due at renewAt of a token's lifetime, or expired at its
// expiry once renewal is known to be impossible. A zero expiry (certificate
// authentication) never fires.
type renewTimer struct {
	dueTimer, expiryTimer *time.Timer
}

func newRenewTimer(issued, expiry time.Time) *renewTimer {
	r := &renewTimer{}
	r.reset(issued, expiry)
	return r
}

func (r *renewTimer) reset(issued, expiry time.Time) {
	r.stop()
	if expiry.IsZero() {
		return
	}
	at := issued.Add(time.Duration(renewAt * float64(expiry.Sub(issued))))
	r.dueTimer = time.NewTimer(time.Until(at))
}

func (r *renewTimer) untilExpiry(expiry time.Time) {
	r.stop()
	r.expiryTimer = time.NewTimer(time.Until(expiry))
}

func (r *renewTimer) due() <-chan time.Time     { return timerChan(r.dueTimer) }
func (r *renewTimer) expired() <-chan time.Time { return timerChan(r.expiryTimer) }

func (r *renewTimer) stop() {
	for _, t := range []*time.Timer{r.dueTimer, r.expiryTimer} {
		if t != nil {
			t.Stop()
		}
	}
	r.dueTimer, r.expiryTimer = nil, nil
}

// timerChan returns t's channel, or nil (blocking forever) without a timer.
func timerChan(t *time.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}
