package transporttest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/directmethods/iotdevice/internal/busy"
	"github.com/directmethods/iotdevice/internal/sastoken"
	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport"
)

// FakeOptions configures a Fake. A nil *FakeOptions means the defaults.
type FakeOptions struct {
	// Key, when set, is the identity's decoded shared access key: tokens
	// presented at Dial (and at RefreshToken) are verified with it, and a
	// bad token fails with transport.ErrUnauthorized. Default: any token is
	// accepted.
	Key []byte
	// InBandRefresh makes connections implement transport.TokenRefresher,
	// as AMQP connections do. Default: off, as MQTT.
	InBandRefresh bool
	// KeepExpired keeps a connection whose token has expired. Default: off;
	// the connection is dropped at expiry, as the hub does.
	KeepExpired bool
	// QueueSize bounds the requests a connection holds for Receive: a
	// request that finds the queue full is answered 503 at once, as the
	// adapters do (their Options.QueueSize). Default: unbounded.
	QueueSize int
}

// Fake is a transport.Dialer whose connections live in memory. It plays
// the hub's part: Invoke sends a method request to the connected client
// and returns its answer. All methods are safe for concurrent use.
type Fake struct {
	opts FakeOptions

	mu              sync.Mutex
	conn            *fakeConn     // the connected client, if any
	connected       chan struct{} // closed while conn is set; replaced when it drops
	dialErr         error         // returned by the next failDials dials
	failDials       int           // < 0: every dial
	dials           int
	refreshes       int
	refuseRefreshes int                        // in-band renewals to refuse
	waiting         map[requestKey]chan answer // the Invoke awaiting each request
	spare           []chan answer              // emptied answer channels, reused by later Invokes
	answeredIDs     map[requestKey]bool        // recently answered requests
	recent          []requestKey               // the same in a ring of rememberAnswers, oldest at recentNext once full
	recentNext      int
	dupes           int
	strays          int
}

// requestKey names a request: request ids are numbered per connection,
// as IoT Hub numbers MQTT $rid values (1, 2, … in hex, starting again on
// each connection), so an id means something only with its connection.
type requestKey struct {
	conn *fakeConn
	id   string
}

type answer struct {
	status  int
	payload []byte
}

// NewFake returns a Fake with no client connected.
func NewFake(opts *FakeOptions) *Fake {
	f := &Fake{connected: make(chan struct{}), waiting: map[requestKey]chan answer{}, answeredIDs: map[requestKey]bool{}}
	if opts != nil {
		f.opts = *opts
	}
	return f
}

// ErrRefused is what dials fail with after FailDials(n, nil).
var ErrRefused = fmt.Errorf("transporttest: connection refused: %w", transport.ErrConnLost)

// FailDials makes the next n dials fail with err (ErrRefused when nil);
// n < 0 fails every dial until FailDials(0, nil).
func (f *Fake) FailDials(n int, err error) {
	if err == nil {
		err = ErrRefused
	}
	f.mu.Lock()
	f.failDials, f.dialErr = n, err
	f.mu.Unlock()
}

// RefuseRefreshes makes the next n in-band token renewals fail as the hub
// does for a token it refuses (transport.ErrUnauthorized), with
// FakeOptions.InBandRefresh. The connection stays up.
func (f *Fake) RefuseRefreshes(n int) {
	f.mu.Lock()
	f.refuseRefreshes = n
	f.mu.Unlock()
}

// RejectCredentials makes every dial fail as the hub does for a wrong key.
func (f *Fake) RejectCredentials() {
	f.FailDials(-1, fmt.Errorf("transporttest: credentials rejected: %w", transport.ErrUnauthorized))
}

// Dial implements transport.Dialer. It obtains a token from
// cfg.Credential as a real transport does, checks it when FakeOptions.Key
// is set, and connects.
func (f *Fake) Dial(ctx context.Context, cfg *transport.Config) (transport.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.dials++
	if f.failDials != 0 {
		if f.failDials > 0 {
			f.failDials--
		}
		err := f.dialErr
		f.mu.Unlock()
		return nil, err
	}
	f.mu.Unlock()

	expiry, err := f.authenticate(ctx, cfg)
	if err != nil {
		return nil, err
	}
	c := &fakeConn{fake: f, cfg: cfg, wake: make(chan struct{}, 1), dead: make(chan struct{})}
	f.mu.Lock()
	old := f.conn
	if old == nil {
		close(f.connected) // wakes WaitConnected; disconnected makes a new one
	}
	f.conn = c
	f.mu.Unlock()
	if old != nil { // one connection per identity: the newcomer evicts the old
		old.fail(fmt.Errorf("transporttest: replaced by a new connection: %w", transport.ErrConnLost))
	}
	c.armExpiry(expiry)
	if f.opts.InBandRefresh {
		return &refreshingConn{c}, nil
	}
	return c, nil
}

// authenticate gets a token from the credential and checks it.
func (f *Fake) authenticate(ctx context.Context, cfg *transport.Config) (time.Time, error) {
	if cfg.Credential == nil {
		return time.Time{}, fmt.Errorf("transporttest: no credential: %w", transport.ErrUnauthorized)
	}
	tok, expiry, err := cfg.Credential.Token(ctx, cfg.Resource())
	if err != nil {
		return time.Time{}, fmt.Errorf("transporttest: get token: %w", err)
	}
	if tok == "" {
		if cfg.Credential.ClientCertificate() == nil {
			return time.Time{}, fmt.Errorf("transporttest: empty token: %w", transport.ErrUnauthorized)
		}
		return time.Time{}, nil
	}
	if !expiry.IsZero() && !time.Now().Before(expiry) {
		return time.Time{}, fmt.Errorf("transporttest: token expired: %w", transport.ErrUnauthorized)
	}
	if f.opts.Key != nil {
		t, err := sastoken.Parse(tok)
		if err == nil {
			err = t.Verify(f.opts.Key, time.Now())
		}
		if err == nil && !t.Covers(cfg.Resource()) {
			err = sas.ErrWrongResource
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("transporttest: token refused: %w: %w", transport.ErrUnauthorized, err)
		}
	}
	return expiry, nil
}

// WaitConnected waits until a client is connected (subscribed, in the
// terms of a real hub) or ctx is done.
func (f *Fake) WaitConnected(ctx context.Context) error {
	for {
		f.mu.Lock()
		c, ch := f.conn, f.connected
		f.mu.Unlock()
		if c != nil {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("transporttest: no client connected: %w", ctx.Err())
		}
	}
}

// Connected reports whether a client is connected.
func (f *Fake) Connected() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conn != nil
}

// Drop fails the current connection as a network failure would: its
// Receive returns an error wrapping err (transport.ErrConnLost when nil).
// It reports whether a connection was dropped.
func (f *Fake) Drop(err error) bool {
	if err == nil {
		err = fmt.Errorf("transporttest: connection dropped: %w", transport.ErrConnLost)
	}
	f.mu.Lock()
	c := f.conn
	f.mu.Unlock()
	if c == nil {
		return false
	}
	c.fail(err)
	return true
}

// ErrAnswerLost is what Invoke fails with when the connection its request
// went out on ends before the client answered. The answer can no longer
// arrive: like IoT Hub, the fake matches an answer only on the connection
// of its request. (The hub itself makes the caller wait for the response
// timeout and then answers 504101; the fake reports the loss at once.)
var ErrAnswerLost = errors.New("transporttest: the request's connection ended before it was answered")

// Invoke calls a method on the connected client, as a cloud application
// would, and returns the status and payload the client answered. It waits
// for a client to connect first (like the hub's connect timeout), and for
// the answer, both bounded by ctx. It fails with ErrAnswerLost if the
// connection ends before the answer.
func (f *Fake) Invoke(ctx context.Context, method string, payload []byte) (status int, response []byte, err error) {
	if err := f.WaitConnected(ctx); err != nil {
		return 0, nil, err
	}
	f.mu.Lock()
	c := f.conn
	if c == nil { // dropped in between: try once more
		f.mu.Unlock()
		return f.Invoke(ctx, method, payload)
	}
	c.lastID++
	key := requestKey{c, strconv.FormatUint(c.lastID, 16)}
	ch := f.answerChan()
	f.waiting[key] = ch
	f.mu.Unlock()

	if !c.deliver(&transport.MethodRequest{Name: method, RequestID: key.id, Payload: append([]byte(nil), payload...)}) {
		f.received(key, ch) // never delivered, so never answered
		return busy.Status, busy.Body(), nil
	}
	select {
	case a := <-ch:
		f.received(key, ch)
		return a.status, a.payload, nil
	case <-c.dead:
		select {
		case a := <-ch: // answered just before the end
			f.received(key, ch)
			return a.status, a.payload, nil
		default:
		}
		f.abandon(key)
		return 0, nil, fmt.Errorf("%s: %w", method, ErrAnswerLost)
	case <-ctx.Done():
		f.abandon(key)
		return 0, nil, fmt.Errorf("transporttest: no answer to %s: %w", method, ctx.Err())
	}
}

// received forgets an answered request and keeps its emptied channel.
func (f *Fake) received(key requestKey, ch chan answer) {
	f.mu.Lock()
	delete(f.waiting, key)
	f.spare = append(f.spare, ch) // received from, so empty, and no longer reachable by answered
	f.mu.Unlock()
}

// abandon forgets a request nobody waits for any more; its channel may
// still receive a late answer, so it is not reused.
func (f *Fake) abandon(key requestKey) {
	f.mu.Lock()
	delete(f.waiting, key)
	f.mu.Unlock()
}

// answerChan returns an empty channel for one answer. f.mu is held.
func (f *Fake) answerChan() chan answer {
	if n := len(f.spare); n > 0 {
		ch := f.spare[n-1]
		f.spare = f.spare[:n-1]
		return ch
	}
	return make(chan answer, 1)
}

// Dials returns how many times Dial was called.
func (f *Fake) Dials() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dials
}

// Refreshes returns how many in-band token renewals succeeded.
func (f *Fake) Refreshes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refreshes
}

// rememberAnswers is how many answered request ids the fake keeps to
// recognise a duplicate answer, so that long tests use bounded memory.
const rememberAnswers = 4096

// DuplicateAnswers returns how many answers came for a request that had
// been answered already (among the last 4,096 answered). A correct client
// never sends any.
func (f *Fake) DuplicateAnswers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dupes
}

// StrayAnswers returns how many answers named no request of the
// connection they came on, such as an answer sent again on a later
// connection. On IoT Hub such an answer can reach another call that got
// the same request id on the new connection; a correct client never sends
// any.
func (f *Fake) StrayAnswers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.strays
}

// answered records an answer that came on c and hands it to the waiting
// Invoke.
func (f *Fake) answered(c *fakeConn, id string, status int, payload []byte) {
	key := requestKey{c, id}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.answeredIDs[key] {
		f.dupes++
		return
	}
	n, err := strconv.ParseUint(id, 16, 64)
	if err != nil || n == 0 || n > c.lastID {
		f.strays++
		return
	}
	f.answeredIDs[key] = true
	if len(f.recent) < rememberAnswers {
		f.recent = append(f.recent, key)
	} else { // forget the oldest in its slot of the ring
		delete(f.answeredIDs, f.recent[f.recentNext])
		f.recent[f.recentNext] = key
		f.recentNext = (f.recentNext + 1) % rememberAnswers
	}
	if ch, ok := f.waiting[key]; ok {
		ch <- answer{status, append([]byte(nil), payload...)}
	}
}

// disconnected forgets c if it is still the current connection.
func (f *Fake) disconnected(c *fakeConn) {
	f.mu.Lock()
	if f.conn == c {
		f.conn = nil
		f.connected = make(chan struct{})
	}
	f.mu.Unlock()
}

// fakeConn is one connection of a Fake.
type fakeConn struct {
	fake *Fake
	cfg  *transport.Config

	lastID uint64 // the number of the last request sent on it; guarded by fake.mu

	mu     sync.Mutex
	queue  []*transport.MethodRequest
	err    error // why the connection ended; nil while it lives
	expiry *time.Timer
	wake   chan struct{} // buffered 1: the queue or err changed
	dead   chan struct{} // closed when the connection ends
}

// deliver queues req for Receive; it reports false when the queue is
// full. A request for an ended connection is lost, as on the network.
func (c *fakeConn) deliver(req *transport.MethodRequest) bool {
	c.mu.Lock()
	if c.err == nil {
		if limit := c.fake.opts.QueueSize; limit > 0 && len(c.queue) >= limit {
			c.mu.Unlock()
			return false
		}
		c.queue = append(c.queue, req)
	}
	c.mu.Unlock()
	c.poke()
	return true
}

func (c *fakeConn) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// fail ends the connection: buffered requests are lost, as on a network
// failure.
func (c *fakeConn) fail(err error) {
	c.end(err, true)
}

func (c *fakeConn) end(err error, lose bool) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	if lose {
		c.queue = nil
	}
	if c.expiry != nil {
		c.expiry.Stop()
	}
	close(c.dead)
	c.mu.Unlock()
	c.fake.disconnected(c)
	c.poke()
}

// armExpiry drops the connection when its token expires, as the hub does.
func (c *fakeConn) armExpiry(expiry time.Time) {
	if expiry.IsZero() || c.fake.opts.KeepExpired {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.expiry != nil {
		c.expiry.Stop()
	}
	if c.err != nil {
		return
	}
	c.expiry = time.AfterFunc(time.Until(expiry), func() {
		c.fail(fmt.Errorf("transporttest: token expired: %w", transport.ErrConnLost))
	})
}

// Receive implements transport.Conn. Any number of goroutines may wait in
// it; each request goes to one of them.
func (c *fakeConn) Receive(ctx context.Context) (*transport.MethodRequest, error) {
	for {
		c.mu.Lock()
		if len(c.queue) > 0 {
			req := c.queue[0]
			// Shift rather than reslice, so the array is reused by the
			// next deliver instead of reallocated; queues are short.
			n := copy(c.queue, c.queue[1:])
			c.queue[n] = nil
			c.queue = c.queue[:n]
			c.mu.Unlock()
			if n > 0 {
				c.poke() // for another goroutine in Receive
			}
			return req, nil
		}
		err := c.err
		c.mu.Unlock()
		if err != nil {
			c.poke() // every goroutine in Receive learns of the end
			return nil, err
		}
		select {
		case <-c.wake:
		case <-ctx.Done():
			c.poke() // the wake-up this call may have taken is another's
			return nil, ctx.Err()
		}
	}
}

// Done implements transport.EndNotifier: the channel is closed once the
// connection has ended.
func (c *fakeConn) Done() <-chan struct{} { return c.dead }

// Respond implements transport.Conn.
func (c *fakeConn) Respond(ctx context.Context, req *transport.MethodRequest, status int, payload []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("transporttest: respond on an ended connection: %w", transport.ErrConnLost)
	}
	c.fake.answered(c, req.RequestID, status, payload)
	return nil
}

// Close implements transport.Conn: buffered requests stay readable, then
// Receive fails with net.ErrClosed.
func (c *fakeConn) Close() error {
	c.end(fmt.Errorf("transporttest: connection closed: %w", net.ErrClosed), false)
	return nil
}

// refreshingConn adds in-band token renewal.
type refreshingConn struct{ *fakeConn }

// RefreshToken implements transport.TokenRefresher.
func (c *refreshingConn) RefreshToken(ctx context.Context) (time.Time, error) {
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	if err != nil {
		return time.Time{}, fmt.Errorf("transporttest: refresh on an ended connection: %w", transport.ErrConnLost)
	}
	c.fake.mu.Lock()
	refuse := c.fake.refuseRefreshes > 0
	if refuse {
		c.fake.refuseRefreshes--
	}
	c.fake.mu.Unlock()
	if refuse {
		return time.Time{}, fmt.Errorf("transporttest: token refused: %w", transport.ErrUnauthorized)
	}
	expiry, err := c.fake.authenticate(ctx, c.cfg)
	if err != nil {
		return time.Time{}, err
	}
	c.armExpiry(expiry)
	c.fake.mu.Lock()
	c.fake.refreshes++
	c.fake.mu.Unlock()
	return expiry, nil
}

var _ transport.TokenRefresher = (*refreshingConn)(nil)
