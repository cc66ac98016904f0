package localhub

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseUsername(t *testing.T) {
	tests := []struct {
		in      string
		want    string // host|device|module|api-version
		wantErr bool
	}{
		{"hub.azure-devices.net/dev/?api-version=2021-04-12&DeviceClientType=c%2F1", "hub.azure-devices.net|dev||2021-04-12", false},
		{"hub/dev/mod/?api-version=2018-06-30", "hub|dev|mod|2018-06-30", false},
		{"hub/dev/api-version=2020-09-30&model-id=dtmi:x;1", "hub|dev||2020-09-30", false},
		{"hub/dev/DeviceClientType=x&api-version=2016-11-14", "hub|dev||2016-11-14", false},
		{"hub/dev/mod/api-version=1", "hub|dev|mod|1", false},
		{"hub/dev/?api-version=a&api-version=b", "hub|dev||a", false},
		// Without api-version, as IoT Hub accepts (MicrosoftDocs/azure-docs
		// issues #16306 and #28519).
		{"hub/dev", "hub|dev||", false},
		{"hub/dev/", "hub|dev||", false},
		{"hub/dev/mod", "hub|dev|mod|", false},
		{"hub/dev/mod/", "hub|dev|mod|", false},
		{"hub/dev/?", "hub|dev||", false},
		{"hub/dev/?DeviceClientType=x", "hub|dev||", false},
		{"hub/dev/mod/?DeviceClientType=x", "hub|dev|mod|", false},
		{"hub/dev/?api-version=", "", true},
		{"hub/dev/?api-version", "", true},
		{"hub/dev/mod/extra/?api-version=1", "", true},
		{"hub/dev/mod/extra", "", true},
		{"hub/dev/mod/extra/", "", true},
		{"hub/dev//", "", true},
		{"hub/dev//?api-version=1", "", true},
		{"hub//", "", true},
		{"hub/", "", true},
		{"hub", "", true},
		{"/dev", "", true},
		{"/dev/", "", true},
		{"hub/?api-version=1", "", true},
		{"hub//?api-version=1", "", true},
		{"hub/d e v/?api-version=1", "", true},
		{"hub/d e v", "", true},
		{"hub/dev/?api-version=%zz", "", true},
		{"", "", true},
	}
	for _, tt := range tests {
		u, err := parseUsername(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseUsername(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrBadUsername) {
				t.Errorf("parseUsername(%q) error %v does not wrap ErrBadUsername", tt.in, err)
			}
			continue
		}
		got := strings.Join([]string{u.hostName, u.deviceID, u.moduleID, u.query["api-version"]}, "|")
		if got != tt.want {
			t.Errorf("parseUsername(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func FuzzParseUsername(f *testing.F) {
	for _, s := range []string{"hub/dev/?api-version=1", "hub/dev/mod/?api-version=1&x=%41", "hub/dev/api-version=1", "/", "?", "a/b/c/d/?",
		"hub/dev", "hub/dev/", "hub/dev/mod", "hub/dev/mod/", "hub/dev/?", "hub/dev//", "hub//", "hub/dev/?api-version"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := parseUsername(s)
		if err != nil {
			return
		}
		if v, ok := u.query["api-version"]; ok && v == "" || u.deviceID == "" || u.hostName == "" {
			t.Errorf("parseUsername(%q) = %+v without an error", s, u)
		}
		if path := u.hostName + "/" + u.identity(); s != path && !strings.HasPrefix(s, path+"/") {
			t.Errorf("parseUsername(%q): identity %q is not the username's path", s, u.identity())
		}
	})
}

func TestParseMethodResponseTopic(t *testing.T) {
	tests := []struct {
		topic      string
		wantStatus int
		wantRID    string
		wantErr    error
	}{
		{"$iothub/methods/res/200/?$rid=1a", 200, "1a", nil},
		{"$iothub/methods/res/-1/?$rid=x&other=1", -1, "x", nil},
		{"$iothub/methods/res/404/?other=1&$rid=ab", 404, "ab", nil},
		{"$iothub/methods/res/200/?$rid=a%2Fb", 200, "a/b", nil},
		// A bad status keeps the rid, so that its call can be failed.
		{"$iothub/methods/res/2x/?$rid=1", 0, "1", ErrBadResponseTopic},
		{"$iothub/methods/res//?$rid=1", 0, "1", ErrBadResponseTopic},
		{"$iothub/methods/res/99999999999/?$rid=1", 0, "1", ErrBadResponseTopic},
		{"$iothub/methods/res/2x/?$rid=", 0, "", ErrBadResponseTopic},
		{"$iothub/methods/res/200/?$rid=", 0, "", ErrBadResponseTopic},
		{"$iothub/methods/res/200/?rid=1", 0, "", ErrBadResponseTopic},
		{"$iothub/methods/res/200", 0, "", ErrBadResponseTopic},
		{"$iothub/twin/res/200/?$rid=1", 0, "", errNotMethodResponse},
		{"devices/dev/messages/events/", 0, "", errNotMethodResponse},
	}
	for _, tt := range tests {
		status, rid, err := parseMethodResponseTopic(tt.topic)
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
			t.Errorf("parse(%q) error = %v, want %v", tt.topic, err, tt.wantErr)
			continue
		}
		if status != tt.wantStatus || rid != tt.wantRID {
			t.Errorf("parse(%q) = %d, %q; want %d, %q", tt.topic, status, rid, tt.wantStatus, tt.wantRID)
		}
	}
}

func FuzzParseMethodResponseTopic(f *testing.F) {
	for _, s := range []string{"$iothub/methods/res/200/?$rid=1", "$iothub/methods/res/-5/?$rid=%41&x", "$iothub/methods/res/", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		_, rid, err := parseMethodResponseTopic(topic)
		if err == nil && rid == "" {
			t.Errorf("parse(%q): empty rid without an error", topic)
		}
	})
}

// FuzzRequestTopicRoundTrip checks that every valid method name and rid
// survive the request topic as the device adapter parses it, and as the
// SDKs that split it on '/' do.
func FuzzRequestTopicRoundTrip(f *testing.F) {
	f.Add("turnOn", uint64(1))
	f.Add("comp*cmd", uint64(0xffffffff))
	f.Fuzz(func(t *testing.T, name string, n uint64) {
		if validateMethodName(name) != nil {
			return
		}
		rid := strconv.FormatUint(n, 16)
		gotName, gotRID, ok := parseRequestTopic(methodRequestTopic(name, rid))
		if !ok || gotName != name || gotRID != rid {
			t.Errorf("round trip of %q, %q = %q, %q, %v", name, rid, gotName, gotRID, ok)
		}
		if parts := strings.Split(methodRequestTopic(name, rid), "/"); len(parts) != 5 {
			t.Errorf("topic for %q has %d segments, want 5", name, len(parts))
		}
	})
}

func TestDecodeInvokeBody(t *testing.T) {
	type result struct {
		Name              string
		Payload           string
		Response, Connect int
		ErrCode           int
	}
	tests := []struct {
		body string
		want result
	}{
		{`{"methodName":"m"}`, result{"m", "", 30, 0, 0}},
		{`{"methodName":"m","payload":{"a":[1]},"responseTimeoutInSeconds":5,"connectTimeoutInSeconds":300}`, result{"m", `{"a":[1]}`, 5, 300, 0}},
		{`{"methodName":"m","payload":null,"responseTimeoutInSeconds":null}`, result{"m", "null", 30, 0, 0}},
		{`{"MethodName":"m"}`, result{"m", "", 30, 0, 0}},
		{`{"methodName":"m","unknown":1}`, result{"m", "", 30, 0, 0}},
		{`{"methodName":"m","responseTimeoutInSeconds":0}`, result{ErrCode: 400004}},
		{`{"methodName":"m","responseTimeoutInSeconds":"30"}`, result{ErrCode: 400004}},
		{`{"methodName":null}`, result{ErrCode: 400004}},
		{``, result{ErrCode: 400004}},
		{`null`, result{ErrCode: 400004}},
	}
	for _, tt := range tests {
		req, rerr := decodeInvokeBody([]byte(tt.body))
		got := result{Name: req.methodName, Payload: string(req.payload),
			Response: int(req.responseTimeout.Seconds()), Connect: int(req.connectTimeout.Seconds())}
		if rerr != nil {
			got = result{ErrCode: rerr.code}
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("decodeInvokeBody(%s) (-want +got):\n%s", tt.body, diff)
		}
	}
}

func FuzzDecodeInvokeBody(f *testing.F) {
	for _, s := range []string{`{"methodName":"m"}`, `{"methodName":"m","payload":[1,{"a":null}],"responseTimeoutInSeconds":300}`, `{`, `[]`, `{"methodName":"a b"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, rerr := decodeInvokeBody(body)
		if rerr != nil {
			if s := rerr.httpStatus(); s != 400 && s != 413 {
				t.Errorf("decodeInvokeBody(%q): HTTP %d", body, s)
			}
			return
		}
		if validateMethodName(req.methodName) != nil {
			t.Errorf("decodeInvokeBody(%q) accepted method name %q", body, req.methodName)
		}
		if len(req.payload) > 0 && !json.Valid(req.payload) {
			t.Errorf("decodeInvokeBody(%q) accepted an invalid payload", body)
		}
		if req.responseTimeout < 5e9 || req.responseTimeout > 300e9 || req.connectTimeout < 0 || req.connectTimeout > 300e9 {
			t.Errorf("decodeInvokeBody(%q): timeouts %v, %v out of range", body, req.responseTimeout, req.connectTimeout)
		}
	})
}

// FuzzParseMethodsPath checks that an accepted path has a device id and
// that one trailing slash after "methods" changes nothing.
func FuzzParseMethodsPath(f *testing.F) {
	for _, s := range []string{"/twins/dev/methods", "/twins/d%2Fx/modules/m/methods", "/twins//methods", "/twins/%zz/methods", "/twins/dev/methods/", "/twins/dev/methods//"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		dev, mod, ok := parseMethodsPath(path)
		if ok && dev == "" {
			t.Errorf("parseMethodsPath(%q) accepted an empty device id", path)
		}
		if strings.HasSuffix(path, "/methods") {
			dev2, mod2, ok2 := parseMethodsPath(path + "/")
			if dev2 != dev || mod2 != mod || ok2 != ok {
				t.Errorf("parseMethodsPath(%q) = %q, %q, %v but with a trailing slash %q, %q, %v", path, dev, mod, ok, dev2, mod2, ok2)
			}
		}
	})
}

// FuzzCheckAPIVersion checks that a query passes only with a single,
// supported api-version, and that a refusal is always 400001.
func FuzzCheckAPIVersion(f *testing.F) {
	for _, s := range []string{"api-version=2021-04-12", "api-version=", "", "api-version=2021-04-12&api-version=2021-04-12", "x=1&api-version=2018-06-30", "api-version=%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		query, _ := url.ParseQuery(rawQuery)
		rerr := checkAPIVersion(query)
		values := query["api-version"]
		valid := len(values) == 1 && slices.Contains(supportedAPIVersions, values[0])
		switch {
		case valid && rerr != nil:
			t.Errorf("checkAPIVersion(%q) refused a supported version: %s", rawQuery, rerr.message)
		case !valid && rerr == nil:
			t.Errorf("checkAPIVersion(%q) accepted %q", rawQuery, values)
		case rerr != nil && (rerr.code != 400001 || rerr.httpStatus() != 400):
			t.Errorf("checkAPIVersion(%q) = %d, want 400001", rawQuery, rerr.code)
		}
	})
}

// FuzzMethodResultRoundTrip checks that ServiceClient's decoder gives back
// exactly the status and device bytes the hub's encoder spliced, whatever
// the bytes, and never panics on an arbitrary body.
func FuzzMethodResultRoundTrip(f *testing.F) {
	for _, s := range []string{"", `{"a":1}`, "not json", `1,"status":500`, "}", `,"payload":`, "\xff"} {
		f.Add(int64(200), []byte(s))
	}
	f.Add(int64(-1), []byte(`null`))
	f.Fuzz(func(t *testing.T, status int64, payload []byte) {
		_, _ = decodeMethodResult(payload) // an arbitrary body: an error or a result, no panic
		st := int(int32(status))           // device statuses are MQTT topic or AMQP int values
		got, err := decodeMethodResult(methodResultBody(st, payload))
		if err != nil {
			t.Fatalf("decode(encode(%d, %q)): %v", st, payload, err)
		}
		want := payload
		if len(payload) == 0 {
			want = []byte("null")
		}
		if got.Status != st || !bytes.Equal(got.Payload, want) {
			t.Errorf("decode(encode(%d, %q)) = %d, %q", st, payload, got.Status, got.Payload)
		}
	})
}
