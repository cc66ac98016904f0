package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/internal/localhub"
)

// SoakMethod is the method soak devices answer. Its payload names the call
// (a token no other call has) and the size of the answer it wants; the
// answer carries the token, a filler drawn from it and a status computed
// from it (soakAnswer, soakStatus), so an answer delivered to another call
// does not match that call's.
const SoakMethod = "soak"

// soakRequest is the payload of a soak call, without its padding.
type soakRequest struct {
	Token   string `json:"token"`
	Answer  int    `json:"answer"`   // bytes of the answer's payload
	DelayMS int    `json:"delay_ms"` // how long the handler waits before answering
}

// soakRequestPayload returns the JSON payload of r, padded with a "pad"
// string to size bytes (or as short as r allows).
func soakRequestPayload(r soakRequest, size int) []byte {
	head := fmt.Sprintf(`{"token":%q,"answer":%d,"delay_ms":%d,"pad":"`, r.Token, r.Answer, r.DelayMS)
	const tail = `"}`
	b := make([]byte, 0, max(size, len(head)+len(tail)))
	b = append(b, head...)
	for range size - len(head) - len(tail) {
		b = append(b, 'x')
	}
	return append(b, tail...)
}

// tokenHash spreads a token over 32 bits.
func tokenHash(token string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(token))
	return h.Sum32()
}

// soakStatus is the status of the answer to the call named token: 200 to
// 299, a function of the token.
func soakStatus(token string) int { return 200 + int(tokenHash(token)%100) }

// soakAnswer is the payload of the answer to the call named token: a JSON
// object of size bytes (or as short as the token allows) that carries the
// token and a filler whose letters depend on it.
func soakAnswer(token string, size int) []byte {
	head := `{"token":` + strconv.Quote(token) + `,"fill":"`
	const tail = `"}`
	b := make([]byte, 0, max(size, len(head)+len(tail)))
	b = append(b, head...)
	h := int(tokenHash(token) % 26)
	for k := range size - len(head) - len(tail) {
		b = append(b, 'a'+byte((h+7*k)%26))
	}
	return append(b, tail...)
}

// soakHandler answers SoakMethod as the call asks.
func soakHandler() device.MethodHandler {
	mux := device.NewMethodMux()
	mux.HandleFunc(SoakMethod, func(ctx context.Context, req *device.MethodRequest) (*device.MethodResponse, error) {
		var in soakRequest
		if err := req.Unmarshal(&in); err != nil {
			return nil, err
		}
		if in.DelayMS > 0 {
			timer := time.NewTimer(time.Duration(in.DelayMS) * time.Millisecond)
			defer timer.Stop()
			select {
			case <-timer.C:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return &device.MethodResponse{Status: soakStatus(in.Token), Payload: soakAnswer(in.Token, in.Answer)}, nil
	})
	return mux
}

// soakCall is one invocation of SoakMethod and the answer it must get.
type soakCall struct {
	device  *soakDevice
	token   string
	payload []byte
	answer  int // bytes of the answer
	connect int // connectTimeoutInSeconds
	respond int // responseTimeoutInSeconds
}

// Size classes of soak payloads: most are small, some reach the limit.
func soakPayloadSize(rng *rand.Rand) int {
	between := func(lo, hi int) int { return lo + rng.IntN(hi-lo+1) }
	switch r := rng.IntN(100); {
	case r < 50:
		return between(64, 1<<10)
	case r < 80:
		return between(1<<10, 16<<10)
	case r < 95:
		return between(16<<10, 96<<10)
	default:
		return between(120<<10, device.MaxPayloadSize) // near the limit, and at it
	}
}

// soakDelay is how long a call asks its handler to wait: mostly nothing,
// sometimes up to 2 s, so that answers are in flight when faults strike.
func soakDelay(rng *rand.Rand) int {
	if rng.IntN(100) < 85 {
		return 0
	}
	return 10 + rng.IntN(2000)
}

// newCall returns call n of caller who on d: with mixed payload sizes,
// handler delays and timeouts when mixed, or a small prompt call (a probe)
// that does not wait for the device to connect.
func (s *soak) newCall(d *soakDevice, who string, n int, rng *rand.Rand, mixed bool) soakCall {
	c := soakCall{device: d, token: fmt.Sprintf("%s.%s.%d.%08x", d.id, who, n, rng.Uint32()), answer: 64, respond: 5}
	size, req := 128, soakRequest{Token: c.token}
	if mixed {
		size, c.answer = soakPayloadSize(rng), soakPayloadSize(rng)
		req.DelayMS = soakDelay(rng)
		c.connect = s.cfg.ConnectTimeouts[rng.IntN(len(s.cfg.ConnectTimeouts))]
		c.respond = s.cfg.ResponseTimeouts[rng.IntN(len(s.cfg.ResponseTimeouts))]
	}
	req.Answer = c.answer
	c.payload = soakRequestPayload(req, size)
	return c
}

// Outcomes of a call other than failures of the hub's API.
const (
	outcomeOK        = ""
	outcomeWrong     = "wrong-answer"
	outcomeHubDown   = "hub-unreachable" // the service API could not be reached: a hub restart
	outcomeCancelled = "cancelled"       // the run was interrupted
)

// verify returns outcomeOK when res is c's answer, "device-<status>" for
// an error the device's SDK answered on the handler's behalf (a status
// outside 2xx without any call's token), and outcomeWrong otherwise, with
// the token the answer carried when it carried one.
func verify(c soakCall, res *localhub.MethodResult) (outcome, gotToken string) {
	if res.Status == soakStatus(c.token) && bytes.Equal(res.Payload, soakAnswer(c.token, c.answer)) {
		return outcomeOK, ""
	}
	var got struct {
		Token string `json:"token"`
	}
	_ = json.Unmarshal(res.Payload, &got)
	if got.Token == "" && (res.Status < 200 || res.Status > 299) {
		return "device-" + strconv.Itoa(res.Status), ""
	}
	return outcomeWrong, got.Token
}

// failureKind names why a call failed: the hub's error code (404103,
// 504101, …), outcomeHubDown when the service API could not be reached,
// outcomeCancelled when the run was interrupted.
func failureKind(ctx context.Context, err error) string {
	var se *localhub.ServiceError
	switch {
	case errors.As(err, &se) && se.ErrorCode != 0:
		return strconv.Itoa(se.ErrorCode)
	case errors.As(err, &se):
		return "http-" + strconv.Itoa(se.HTTPStatus)
	case ctx.Err() != nil:
		return outcomeCancelled
	}
	return outcomeHubDown
}

// invoke makes c, checks its answer, counts the outcome and returns it.
func (s *soak) invoke(ctx context.Context, c soakCall) string {
	res, err := s.service.Invoke(ctx, c.device.id, "", localhub.MethodCall{
		MethodName: SoakMethod, Payload: c.payload, ConnectTimeoutInSeconds: c.connect, ResponseTimeoutInSeconds: c.respond,
	})
	outcome := outcomeOK
	if err != nil {
		outcome = failureKind(ctx, err)
	} else {
		var other string
		if outcome, other = verify(c, res); outcome == outcomeWrong {
			// The tokens name calls; payloads are not logged.
			s.log.Error("soak: wrong answer", "device_id", c.device.id, "call", c.token, "answer_of", other,
				"status", res.Status, "want_status", soakStatus(c.token), "bytes", len(res.Payload), "want_bytes", c.answer)
		}
	}
	s.counters.called(outcome)
	return outcome
}

// failurePause is how long a caller waits after a failed call, so that an
// offline device is not called in a tight loop.
const failurePause = 200 * time.Millisecond

// callLoop makes mixed calls to d, one at a time, until stop is closed or
// ctx ends; the call in flight then finishes (within its timeouts).
func (s *soak) callLoop(ctx context.Context, stop <-chan struct{}, d *soakDevice, who string, rng *rand.Rand) {
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		if s.invoke(ctx, s.newCall(d, who, n, rng, true)) != outcomeOK && !pause(ctx, stop, failurePause) {
			return
		}
	}
}

// probe calls d with prompt calls until one is answered right, and
// records how long after since that was; it gives up at deadline.
func (s *soak) probe(ctx context.Context, d *soakDevice, since, deadline time.Time, rng *rand.Rand) {
	for n := 0; time.Now().Before(deadline) && ctx.Err() == nil; n++ {
		if s.invoke(ctx, s.newCall(d, "probe", n, rng, false)) == outcomeOK {
			d.recovery = time.Since(since)
			d.recovered = true
			return
		}
		pause(ctx, nil, min(failurePause, time.Until(deadline)))
	}
}

// pause waits d; false when stop is closed or ctx ends first.
func pause(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-stop:
		return false
	case <-ctx.Done():
		return false
	}
}
