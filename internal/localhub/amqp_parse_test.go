package localhub

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/directmethods/iotdevice/internal/amqp"
	"github.com/directmethods/iotdevice/internal/amqpwire"
)

func TestParseMethodAddress(t *testing.T) {
	tests := []struct {
		in   string
		want string // identity; "" for an error
	}{
		{"/devices/dev-1/methods/devicebound", "dev-1"},
		{"devices/dev-1/methods/devicebound", "dev-1"},
		{"/devices/dev-1/methods/deviceBound", "dev-1"},
		{"/DEVICES/dev-1/METHODS/DEVICEBOUND", "dev-1"},
		{"amqps://hub.azure-devices.net/devices/dev-1/methods/devicebound", "dev-1"},
		{"amqps://hub.azure-devices.net:5671/devices/dev-1/methods/deviceBound", "dev-1"},
		{"AMQPS://localhost/devices/dev/modules/mod/methods/deviceBound", "dev/mod"},
		{"/devices/dev/modules/mod/methods/devicebound", "dev/mod"},
		{"/devices/a%2Bb/methods/devicebound", "a+b"},
		{"/devices/Dev-Case/methods/devicebound", "Dev-Case"},
		{"/devices/dev/methods/devicebound/", ""},
		{"/devices/dev/messages/devicebound", ""},
		{"/devices/dev/modules/mod/extra/methods/devicebound", ""},
		{"/devices//methods/devicebound", ""},
		{"/devices/d%zz/methods/devicebound", ""},
		{"/devices/d e v/methods/devicebound", ""},
		{"amqps://hub", ""},
		{"$cbs", ""},
		{"", ""},
		// The addresses the device adapter attaches to.
		{amqpwire.MethodsAddress("dev-1", ""), "dev-1"},
		{amqpwire.MethodsAddress("dev-1", "mod-1"), "dev-1/mod-1"},
	}
	for _, tt := range tests {
		got, err := parseMethodAddress(tt.in)
		if tt.want == "" {
			if err == nil || !errors.Is(err, errBadAddress) {
				t.Errorf("parseMethodAddress(%q) = %q, %v; want an errBadAddress", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseMethodAddress(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestParseAudience(t *testing.T) {
	tests := []struct {
		in       string
		host     string
		identity string
		hostOnly bool
		wantErr  bool
	}{
		{in: "hub/devices/dev", host: "hub", identity: "dev"},
		{in: "hub%2Fdevices%2Fdev", host: "hub", identity: "dev"},
		{in: "amqps://hub/devices/dev/modules/mod", host: "hub", identity: "dev/mod"},
		{in: "amqps%3A%2F%2Fhub%2Fdevices%2Fdev", host: "hub", identity: "dev"},
		{in: "hub.azure-devices.net", host: "hub.azure-devices.net", hostOnly: true},
		{in: "hub/", host: "hub", hostOnly: true},
		{in: "hub/twins/dev", wantErr: true},
		{in: "hub/devices", wantErr: true},
		{in: "bad host/devices/dev", wantErr: true},
		{in: "hub/devices/dev%zz", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		host, identity, hostOnly, err := parseAudience(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseAudience(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if host != tt.host || identity != tt.identity || hostOnly != tt.hostOnly {
			t.Errorf("parseAudience(%q) = %q, %q, %v; want %q, %q, %v", tt.in, host, identity, hostOnly, tt.host, tt.identity, tt.hostOnly)
		}
	}
}

func TestParsePlainUsername(t *testing.T) {
	tests := []struct {
		in       string
		identity string
		hub      string
		wantErr  bool
	}{
		{in: "dev@sas.hub", identity: "dev", hub: "hub"},
		{in: "dev/modules/mod@sas.hub.azure-devices.net", identity: "dev/mod", hub: "hub.azure-devices.net"},
		{in: "a@b@sas.hub", identity: "a@b", hub: "hub"},
		{in: "iothubowner@sas.root.hub", wantErr: true},
		{in: "dev@sas.", wantErr: true},
		{in: "dev", wantErr: true},
		{in: "@sas.hub", wantErr: true},
		{in: "dev/modules/@sas.hub", wantErr: true},
		{in: "dev/x@sas.hub", wantErr: true},
	}
	for _, tt := range tests {
		identity, hub, err := parsePlainUsername(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parsePlainUsername(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if identity != tt.identity || hub != tt.hub {
			t.Errorf("parsePlainUsername(%q) = %q, %q; want %q, %q", tt.in, identity, hub, tt.identity, tt.hub)
		}
	}
}

func TestParseMethodResponse(t *testing.T) {
	id := amqp.UUID{1, 2, 3}
	props := &amqp.Properties{CorrelationID: id}
	tests := []struct {
		name    string
		msg     *amqp.Message
		want    methodResponse
		wantErr bool
	}{
		{"int32 status, one section", &amqp.Message{Properties: props, ApplicationProperties: map[string]any{"IoThub-status": int32(200)}, Data: [][]byte{[]byte(`{"a":1}`)}},
			methodResponse{status: 200, payload: []byte(`{"a":1}`)}, false},
		{"int64 status, two sections", &amqp.Message{Properties: props, ApplicationProperties: map[string]any{"IoThub-status": int64(404)}, Data: [][]byte{[]byte(`{"a"`), []byte(`:1}`)}},
			methodResponse{status: 404, payload: []byte(`{"a":1}`)}, false},
		{"ubyte status, no body", &amqp.Message{Properties: props, ApplicationProperties: map[string]any{"IoThub-status": uint8(204)}},
			methodResponse{status: 204}, false},
		{"negative short status", &amqp.Message{Properties: props, ApplicationProperties: map[string]any{"IoThub-status": int16(-1)}},
			methodResponse{status: -1}, false},
		{"key in another case", &amqp.Message{Properties: props, ApplicationProperties: map[string]any{"iothub-STATUS": uint32(500)}},
			methodResponse{status: 500}, false},
		{"no status", &amqp.Message{Properties: props, Data: [][]byte{[]byte(`{}`)}}, methodResponse{}, true},
		{"string status", &amqp.Message{Properties: props, ApplicationProperties: map[string]any{"IoThub-status": "200"}}, methodResponse{}, true},
		{"status too large", &amqp.Message{Properties: props, ApplicationProperties: map[string]any{"IoThub-status": int64(1) << 40}}, methodResponse{}, true},
		{"no properties", &amqp.Message{ApplicationProperties: map[string]any{"IoThub-status": int32(200)}}, methodResponse{}, true},
		{"too large", &amqp.Message{Properties: props, ApplicationProperties: map[string]any{"IoThub-status": int32(200)}, Data: [][]byte{make([]byte, maxMethodPayload+1)}}, methodResponse{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			corr, got, err := parseMethodResponse(tt.msg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalidResponse) {
					t.Errorf("error %v does not wrap ErrInvalidResponse", err)
				}
				// The call it names can still be failed at once.
				if tt.msg.Properties != nil && corr != any(id) {
					t.Errorf("correlation id with the error = %v, want %v", corr, id)
				}
				return
			}
			if corr != any(id) {
				t.Errorf("correlation id = %v, want %v", corr, id)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(methodResponse{})); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCorrelationIDRoundTrip(t *testing.T) {
	prefix := [8]byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4}
	for _, n := range []uint64{1, 0xff, 0x123456789abcdef0} {
		id := requestCorrelationID(prefix, n)
		for _, form := range []any{id, id.String(), strings.ToUpper(id.String()), id[:]} {
			got, ok := responseNumber(prefix, form)
			if !ok || got != n {
				t.Errorf("responseNumber(%T %v) = %d, %v; want %d", form, form, got, ok, n)
			}
		}
		if _, ok := responseNumber([8]byte{}, id); ok {
			t.Errorf("a uuid of another hub was accepted")
		}
	}
	for _, bad := range []any{nil, uint64(1), "not-a-uuid", "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", []byte{1, 2}} {
		if n, ok := responseNumber(prefix, bad); ok {
			t.Errorf("responseNumber(%v) = %d, want no match", bad, n)
		}
	}
}

func TestParsePutToken(t *testing.T) {
	props := func(op, typ, name string) map[string]any {
		return map[string]any{"operation": op, "type": typ, "name": name}
	}
	tests := []struct {
		name       string
		msg        *amqp.Message
		wantStatus int32 // 0: parsed
	}{
		{"c sdk", &amqp.Message{ApplicationProperties: props("put-token", "servicebus.windows.net:sastoken", "h/devices/d"), Value: "tok"}, 0},
		{"c# sdk", &amqp.Message{ApplicationProperties: props("put-token", "azure-devices.net:sastoken", "h/devices/d"), Value: "tok"}, 0},
		{"other operation", &amqp.Message{ApplicationProperties: props("delete-token", "azure-devices.net:sastoken", "h/devices/d"), Value: "tok"}, 400},
		{"jwt", &amqp.Message{ApplicationProperties: props("put-token", "jwt", "h/devices/d"), Value: "tok"}, 400},
		{"no audience", &amqp.Message{ApplicationProperties: props("put-token", "azure-devices.net:sastoken", ""), Value: "tok"}, 400},
		{"empty token", &amqp.Message{ApplicationProperties: props("put-token", "azure-devices.net:sastoken", "h/devices/d"), Value: ""}, 400},
		{"no properties", &amqp.Message{Value: "tok"}, 400},
	}
	for _, tt := range tests {
		_, err := parsePutToken(tt.msg)
		var got int32
		if err != nil {
			got = err.status
		}
		if got != tt.wantStatus {
			t.Errorf("%s: status %d (%v), want %d", tt.name, got, err, tt.wantStatus)
		}
	}
}

func FuzzParseMethodAddress(f *testing.F) {
	for _, s := range []string{"/devices/d/methods/devicebound", "amqps://h:1/devices/d/modules/m/methods/deviceBound", "$cbs", "://", "a://b", "/devices/%/methods/devicebound"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		identity, err := parseMethodAddress(s)
		if err != nil {
			return
		}
		if _, _, err := splitIdentity(identity); err != nil {
			t.Errorf("parseMethodAddress(%q) = %q, not a valid identity: %v", s, identity, err)
		}
	})
}

func FuzzParseAudience(f *testing.F) {
	for _, s := range []string{"hub/devices/d", "amqps%3A%2F%2Fh%2Fdevices%2Fd%2Fmodules%2Fm", "hub", "", "h/devices/%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, identity, hostOnly, err := parseAudience(s)
		if err != nil || hostOnly {
			return
		}
		if _, _, err := splitIdentity(identity); err != nil {
			t.Errorf("parseAudience(%q) identity %q is not valid: %v", s, identity, err)
		}
	})
}

func FuzzParsePlainUsername(f *testing.F) {
	for _, s := range []string{"d@sas.h", "d/modules/m@sas.h", "p@sas.root.h", "@sas.", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		identity, _, err := parsePlainUsername(s)
		if err != nil {
			return
		}
		if _, _, err := splitIdentity(identity); err != nil {
			t.Errorf("parsePlainUsername(%q) identity %q is not valid: %v", s, identity, err)
		}
	})
}

// FuzzParseMethodResponse decodes arbitrary message bytes and parses them
// as a device's answer: never a panic.
func FuzzParseMethodResponse(f *testing.F) {
	seed, err := amqp.MarshalMessage(&amqp.Message{
		Properties:            &amqp.Properties{CorrelationID: amqp.UUID{1}},
		ApplicationProperties: map[string]any{"IoThub-status": int32(200)},
		Data:                  [][]byte{[]byte(`{}`)},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := amqp.UnmarshalMessage(b)
		if err != nil {
			return
		}
		corr, resp, err := parseMethodResponse(m)
		if err != nil {
			return
		}
		if len(resp.payload) > maxMethodPayload {
			t.Errorf("payload of %d bytes accepted", len(resp.payload))
		}
		_, _ = responseNumber([8]byte{}, corr)
		_, _ = parsePutToken(m)
	})
}
