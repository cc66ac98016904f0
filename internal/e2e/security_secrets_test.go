package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/internal/faultproxy"
	"github.com/directmethods/iotdevice/internal/localhub"
	"github.com/directmethods/iotdevice/sas"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// tokenRecorder wraps a credential and keeps every token it hands out, so
// the test can look for their signatures in the output.
type tokenRecorder struct {
	sas.Credential
	mu     sync.Mutex
	tokens []string
}

func (r *tokenRecorder) Token(ctx context.Context, resource string) (string, time.Time, error) {
	tok, expiry, err := r.Credential.Token(ctx, resource)
	if err == nil {
		r.mu.Lock()
		r.tokens = append(r.tokens, tok)
		r.mu.Unlock()
	}
	return tok, expiry, err
}

func (r *tokenRecorder) signatures() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var sigs []string
	for _, tok := range r.tokens {
		sigs = append(sigs, tokenSignature(tok)...)
	}
	return sigs
}

// tokenSignature returns a token's signature, encoded and decoded.
func tokenSignature(token string) []string {
	_, fields, _ := strings.Cut(token, " ")
	q, err := url.ParseQuery(fields)
	if err != nil || q.Get("sig") == "" {
		return nil
	}
	return []string{q.Get("sig"), url.QueryEscape(q.Get("sig"))}
}

// Marker strings carried by payloads: none may reach the logs.
const (
	requestMarker  = "REQUEST-PAYLOAD-MARKER-7f3a"
	responseMarker = "RESPONSE-PAYLOAD-MARKER-91c2"
)

// TestSecretsNeverLogged runs the client's failure paths with a debug
// JSON logger: refused credentials (wrong key, unknown device, an expired
// fixed token), a connection reset, a black hole, a handler panic, a
// response that is not JSON and an oversized one. Neither the logs nor the
// errors returned contain the key (base64 or raw), a token signature,
// "sig=" or a payload.
func TestSecretsNeverLogged(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startHub(t, "dev-1")
			cs, err := hub.ConnectionString("dev-1")
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := sas.ParseConnectionString(cs)
			if err != nil {
				t.Fatal(err)
			}
			rawKey, err := sas.DecodeKey(parsed.SharedAccessKey)
			if err != nil {
				t.Fatal(err)
			}
			out := &syncBuffer{}
			logger := slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
			var errs []error
			var sigs []string
			options := func(tweaks ...func(*device.ClientOptions)) *device.ClientOptions {
				o := deviceOptions(t, hub, tr)
				o.Logger = logger
				for _, f := range tweaks {
					f(o)
				}
				return o
			}
			runFatal := func(name string, client *device.Client) {
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				defer cancel()
				err := client.Run(ctx, echoMux())
				var de *device.Error
				if !errors.As(err, &de) {
					t.Errorf("%s: Run = %v, want a *device.Error", name, err)
				}
				errs = append(errs, err)
			}

			// Refused credentials.
			wrongKey := base64.StdEncoding.EncodeToString([]byte("a wrong key that is long enough!"))
			wrong, err := device.NewClientFromConnectionString(strings.Replace(cs, parsed.SharedAccessKey, wrongKey, 1), options())
			if err != nil {
				t.Fatal(err)
			}
			runFatal("wrong key", wrong)
			ghost, err := device.NewClientFromConnectionString(strings.Replace(cs, "DeviceId=dev-1", "DeviceId=ghost", 1), options())
			if err != nil {
				t.Fatal(err)
			}
			runFatal("unknown device", ghost)
			expiredToken := sas.Sign(rawKey, sas.Resource(parsed.HostName, "dev-1", ""), "", time.Now().Add(-time.Minute))
			sigs = append(sigs, tokenSignature(expiredToken)...)
			expiredCred, err := sas.NewTokenCredential(expiredToken)
			if err != nil {
				t.Fatal(err)
			}
			expired, err := device.NewClient(parsed.HostName, "dev-1", expiredCred, options())
			if err != nil {
				t.Fatal(err)
			}
			runFatal("expired token", expired)

			// Faults and bad answers on a working connection.
			proxy := startProxy(t, hub, tr)
			key, err := sas.NewKeyCredential(parsed.SharedAccessKey, "", 0)
			if err != nil {
				t.Fatal(err)
			}
			cred := &tokenRecorder{Credential: key}
			dialer, _ := fastDeadPeerDialer(t, tr, time.Second)
			states := newStateLog()
			mux := device.NewMethodMux()
			mux.HandleFunc("panic", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
				panic("handler failed")
			})
			mux.HandleFunc("badjson", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
				return &device.MethodResponse{Status: 200, Payload: json.RawMessage(`{"` + responseMarker + `": not json`)}, nil
			})
			mux.HandleFunc("huge", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
				big := `"` + strings.Repeat(responseMarker, device.MaxPayloadSize/len(responseMarker)+1) + `"`
				return &device.MethodResponse{Status: 200, Payload: json.RawMessage(big)}, nil
			})
			mux.HandleFunc("fails", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
				return nil, errors.New("handler error")
			})
			client, err := device.NewClient(parsed.HostName, "dev-1", cred, options(viaProxy(proxy, states.tweak, func(o *device.ClientOptions) {
				o.Transport, o.KeepAlive = dialer, time.Second
			})))
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- client.Run(context.Background(), mux) }() // joined below
			states.waitFor(t, device.StateConnected, 1, 20*time.Second)
			waitSubscribed(t, hub, "dev-1")
			svc := hub.ServiceClient()
			ctx := ctxTimeout(t, 60*time.Second)
			for _, call := range []struct {
				method string
				status int
			}{{"panic", 500}, {"badjson", 500}, {"huge", 500}, {"fails", 500}, {"missing", 501}} {
				payload := json.RawMessage(fmt.Sprintf(`{"marker":%q}`, requestMarker))
				res, err := svc.Invoke(ctx, "dev-1", "", localhub.MethodCall{MethodName: call.method, Payload: payload})
				if err != nil || res.Status != call.status {
					t.Errorf("%s: %+v, %v; want status %d", call.method, res, err, call.status)
				} else if bytes.Contains(res.Payload, []byte(requestMarker)) || bytes.Contains(res.Payload, []byte(responseMarker)) {
					t.Errorf("%s: the error answer repeats a payload: %s", call.method, res.Payload)
				}
			}
			proxy.Reset()
			states.waitFor(t, device.StateConnected, 2, 20*time.Second)
			proxy.BlackHole(faultproxy.Both)
			states.waitFor(t, device.StateDisconnected, 2, 20*time.Second)
			proxy.Restore()
			states.waitFor(t, device.StateConnected, 3, 30*time.Second)
			client.Close()
			errs = append(errs, <-done)
			sigs = append(sigs, cred.signatures()...)
			for _, e := range states.snapshot() {
				errs = append(errs, e.err)
			}

			var text bytes.Buffer
			text.Write(out.Bytes())
			for _, err := range errs {
				if err != nil {
					fmt.Fprintf(&text, "%v\n%+v\n%#v\n", err, err, err)
				}
			}
			if text.Len() == 0 || !bytes.Contains(text.Bytes(), []byte(`"level":"DEBUG"`)) {
				t.Fatalf("no debug output captured: the test would prove nothing")
			}
			secrets := map[string][]byte{
				"the key":        []byte(parsed.SharedAccessKey),
				"the wrong key":  []byte(wrongKey),
				"the raw key":    rawKey,
				"sig=":           []byte("sig="),
				"request data":   []byte(requestMarker),
				"response data":  []byte(responseMarker),
				"a token prefix": []byte("SharedAccessSignature sr"),
			}
			for i, sig := range sigs {
				secrets[fmt.Sprintf("token signature %d", i)] = []byte(sig)
			}
			if len(sigs) < 4 {
				t.Errorf("only %d signatures recorded: the test would prove little", len(sigs))
			}
			for what, secret := range secrets {
				if i := bytes.Index(text.Bytes(), secret); i >= 0 {
					lo, hi := max(0, i-200), min(text.Len(), i+len(secret)+50)
					t.Errorf("%s appears in the output: …%s…", what, text.Bytes()[lo:hi])
				}
			}
		})
	}
}
