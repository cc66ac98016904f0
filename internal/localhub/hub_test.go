package localhub

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestInvokeAndAnswer(t *testing.T) {
	tests := []struct {
		name      string
		identity  string
		webSocket bool
		qos       byte
	}{
		{"tcp device qos0", "dev-tcp", false, 0},
		{"tcp device qos1", "dev-tcp", false, 1},
		{"websocket device", "dev-ws", true, 1},
		{"tcp module", "dev-mod/mod-1", false, 1},
		{"websocket module", "dev-mod/mod-1", true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := startHub(t, Options{Devices: []string{tt.identity}})
			connectDevice(t, h, tt.identity, deviceOptions{webSocket: tt.webSocket, qos: tt.qos,
				answer: func(name string, payload []byte) (int, []byte, bool) {
					return 201, []byte(fmt.Sprintf(`{"method":%q,"got":%s}`, name, payload)), true
				}})
			got, err := invoke(t, h, tt.identity, MethodCall{MethodName: "turnOn", Payload: json.RawMessage(`{"speed":2}`)})
			if err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			want := &MethodResult{Status: 201, Payload: json.RawMessage(`{"method":"turnOn","got":{"speed":2}}`)}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
		})
	}
}

// deviceAnswers are the bodies TestInvokePayloadForms's device answers
// with, by method name.
var deviceAnswers = map[string]string{
	"empty":    "",
	"notjson":  "not json",
	"quotes":   `{'filename': 'logs.zip'}`, // as in azure-iot-sdk-node issue #736
	"binary":   "\xff\x00\x01",
	"breakout": `1,"status":500`,
	"spaced":   ` {"a": 1} `,
}

// TestInvokePayloadForms checks the request payloads the device gets and
// that the caller gets the device's answer bytes unchanged, JSON or not.
func TestInvokePayloadForms(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev"}})
	var mu sync.Mutex
	var seen []string
	connectDevice(t, h, "dev", deviceOptions{answer: func(name string, payload []byte) (int, []byte, bool) {
		mu.Lock()
		seen = append(seen, string(payload))
		mu.Unlock()
		if answer, ok := deviceAnswers[name]; ok {
			return 200, []byte(answer), true
		}
		return 200, []byte(`"ok"`), true
	}})
	tests := []struct {
		name        string
		call        MethodCall
		want        *MethodResult
		wantErrCode int
		wantRequest string
	}{
		{"no payload", MethodCall{MethodName: "m"}, &MethodResult{200, json.RawMessage(`"ok"`)}, 0, ""},
		{"null payload", MethodCall{MethodName: "m", Payload: json.RawMessage(`null`)}, &MethodResult{200, json.RawMessage(`"ok"`)}, 0, "null"},
		{"number payload", MethodCall{MethodName: "m", Payload: json.RawMessage(`42`)}, &MethodResult{200, json.RawMessage(`"ok"`)}, 0, "42"},
		{"empty answer", MethodCall{MethodName: "empty"}, &MethodResult{200, json.RawMessage(`null`)}, 0, ""},
		{"answer not JSON", MethodCall{MethodName: "notjson"}, &MethodResult{200, json.RawMessage(`not json`)}, 0, ""},
		{"answer with single quotes", MethodCall{MethodName: "quotes"}, &MethodResult{200, json.RawMessage(`{'filename': 'logs.zip'}`)}, 0, ""},
		{"answer that is not UTF-8", MethodCall{MethodName: "binary"}, &MethodResult{200, json.RawMessage("\xff\x00\x01")}, 0, ""},
		{"answer that closes the object", MethodCall{MethodName: "breakout"}, &MethodResult{200, json.RawMessage(`1,"status":500`)}, 0, ""},
		{"answer with spaces around JSON", MethodCall{MethodName: "spaced"}, &MethodResult{200, json.RawMessage(` {"a": 1} `)}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			seen = nil
			mu.Unlock()
			got, err := invoke(t, h, "dev", tt.call)
			if tt.wantErrCode != 0 {
				var se *ServiceError
				if !errors.As(err, &se) || se.ErrorCode != tt.wantErrCode {
					t.Fatalf("Invoke error = %v, want code %d", err, tt.wantErrCode)
				}
			} else if err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			mu.Lock()
			defer mu.Unlock()
			if diff := cmp.Diff([]string{tt.wantRequest}, seen); diff != "" {
				t.Errorf("request payloads (-want +got):\n%s", diff)
			}
		})
	}
}

func TestX509Device(t *testing.T) {
	h := startHub(t, Options{})
	cert, err := h.AddX509Device("x509-dev")
	if err != nil {
		t.Fatalf("AddX509Device: %v", err)
	}
	cs, err := h.ConnectionString("x509-dev")
	if err != nil {
		t.Fatal(err)
	}
	if want := "HostName=localhost;DeviceId=x509-dev;x509=true"; cs != want {
		t.Errorf("ConnectionString = %q, want %q", cs, want)
	}
	for _, ws := range []bool{false, true} {
		t.Run(fmt.Sprintf("websocket=%v", ws), func(t *testing.T) {
			d := connectDevice(t, h, "x509-dev", deviceOptions{cert: &cert, webSocket: ws})
			got, err := invoke(t, h, "x509-dev", MethodCall{MethodName: "m", Payload: json.RawMessage(`[1]`)})
			if err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			if diff := cmp.Diff(&MethodResult{200, json.RawMessage(`[1]`)}, got); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			d.close()
		})
	}
	t.Run("other certificate refused", func(t *testing.T) {
		other, err := newClientCert("x509-dev")
		if err != nil {
			t.Fatal(err)
		}
		otherCert := other.tlsCertificate()
		c := dialRaw(t, h, &otherCert)
		c.write(t, connectPacket(h.HostName(), "x509-dev", "", true))
		if code := connackCode(t, c); code != connackNotAuthorized {
			t.Errorf("CONNACK = %d, want %d", code, connackNotAuthorized)
		}
	})
	t.Run("no certificate refused", func(t *testing.T) {
		c := dialRaw(t, h, nil)
		c.write(t, connectPacket(h.HostName(), "x509-dev", "", true))
		if code := connackCode(t, c); code != connackNotAuthorized {
			t.Errorf("CONNACK = %d, want %d", code, connackNotAuthorized)
		}
	})
}

// TestIdentityCannotAnswerAnother has one device answer with the request
// id of a call addressed to another device: the hub ignores it, and the
// call gets the addressee's own answer.
func TestIdentityCannotAnswerAnother(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"victim", "attacker", "victim/mod"}})
	victim := connectRaw(t, h, "victim")
	subscribe(t, victim, 1)
	for _, other := range []string{"attacker", "victim/mod"} {
		t.Run(other, func(t *testing.T) {
			attacker := connectRaw(t, h, other)
			type result struct {
				res *MethodResult
				err error
			}
			done := make(chan result, 1)
			go func() { // owned by the test: ends when the invocation returns
				res, err := invoke(t, h, "victim", MethodCall{MethodName: "secret"})
				done <- result{res, err}
			}()
			topic, _ := readRequest(t, victim)
			_, rid, ok := parseRequestTopic(topic)
			if !ok {
				t.Fatalf("request topic %q", topic)
			}
			publishResponse(t, attacker, 200, rid, `{"forged":true}`) // waits for the PUBACK
			publishResponse(t, victim, 200, rid, `{"genuine":true}`)
			r := <-done
			if r.err != nil {
				t.Fatalf("Invoke: %v", r.err)
			}
			if diff := cmp.Diff(&MethodResult{200, json.RawMessage(`{"genuine":true}`)}, r.res); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
		})
	}
}
