package localhub

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDecodeTwinUpdateRefusals(t *testing.T) {
	deep := `{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":{"j":{"k":1}}}}}}}}}}}`
	tests := []struct {
		name, body string
		replace    bool
		want       string // part of the message
	}{
		{"malformed JSON", `{"tags":`, false, "not a valid twin"},
		{"not an object", `[1]`, false, "not a valid twin"},
		{"tags not an object", `{"tags":[1]}`, false, "tags must be a JSON object"},
		{"tags a string", `{"tags":"x"}`, false, "tags must be a JSON object"},
		{"array value", `{"tags":{"a":[1,2]}}`, false, "is an array"},
		{"nested array", `{"tags":{"a":{"b":[]}}}`, false, "tags.a.b is an array"},
		{"dot in key", `{"tags":{"a.b":1}}`, false, "which keys may not have"},
		{"dollar in key", `{"tags":{"$a":1}}`, false, "which keys may not have"},
		{"space in key", `{"tags":{"a b":1}}`, false, "which keys may not have"},
		{"control in key", `{"tags":{"a\u0001":1}}`, false, "which keys may not have"},
		{"C1 control in key", `{"tags":{"a\u0085":1}}`, false, "which keys may not have"},
		{"empty key", `{"tags":{"":1}}`, false, "a key is empty"},
		{"long key", `{"tags":{"` + strings.Repeat("k", maxTagKeyBytes+1) + `":1}}`, false, "longer than 1024"},
		{"long string", `{"tags":{"a":"` + strings.Repeat("s", maxTagStringBytes+1) + `"}}`, false, "longer than 4096"},
		{"integer too large", `{"tags":{"a":4503599627370496}}`, false, "out of range"},
		{"integer too small", `{"tags":{"a":-4503599627370497}}`, false, "out of range"},
		{"huge integer", `{"tags":{"a":123456789012345678901234567890}}`, false, "out of range"},
		{"too deep", `{"tags":` + deep + `}`, false, "deeper than 10"},
		{"null in a replacement", `{"tags":{"a":null}}`, true, "tags.a is null"},
		{"other device", `{"deviceId":"other","tags":{}}`, false, `deviceId "other" is not the device "dev"`},
		{"other module", `{"moduleId":"other","tags":{}}`, false, `moduleId "other" is not the module ""`},
		{"desired properties", `{"properties":{"desired":{"fan":1}}}`, false, `properties.desired: sets "fan"`},
		{"reported properties", `{"properties":{"reported":{"fan":1}}}`, false, `properties.reported: sets "fan"`},
		{"desired not an object", `{"properties":{"desired":1}}`, false, "properties.desired: not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, rerr := decodeTwinUpdate([]byte(tt.body), "dev", "", tt.replace)
			if rerr == nil {
				t.Fatalf("decodeTwinUpdate(%s) accepted it", clip(tt.body))
			}
			if rerr.code != 400004 || !strings.Contains(rerr.message, tt.want) {
				t.Errorf("error = %d %q, want 400004 containing %q", rerr.code, rerr.message, tt.want)
			}
		})
	}
}

func TestTwinUpdateApply(t *testing.T) {
	start := map[string]any{"floor": json.Number("3"), "loc": map[string]any{"bldg": "43", "room": "a"}, "keep": true}
	tests := []struct {
		name, body string
		replace    bool
		want       string
	}{
		{"merge", `{"tags":{"floor":4,"loc":{"room":null,"desk":"b"}}}`, false, `{"floor":4,"keep":true,"loc":{"bldg":"43","desk":"b"}}`},
		{"remove", `{"tags":{"keep":null,"missing":null}}`, false, `{"floor":3,"loc":{"bldg":"43","room":"a"}}`},
		{"object over value", `{"tags":{"floor":{"n":1,"x":null}}}`, false, `{"floor":{"n":1},"keep":true,"loc":{"bldg":"43","room":"a"}}`},
		{"no tags", `{"etag":"x","version":9,"status":"enabled"}`, false, `{"floor":3,"keep":true,"loc":{"bldg":"43","room":"a"}}`},
		{"metadata only", `{"properties":{"desired":{"$version":1,"$metadata":{}},"reported":null}}`, false, `{"floor":3,"keep":true,"loc":{"bldg":"43","room":"a"}}`},
		{"replace", `{"deviceId":"dev","tags":{"new":1.5e3}}`, true, `{"new":1.5e3}`},
		{"replace without tags", `{"deviceId":"dev"}`, true, `{}`},
		{"replace with null tags", `{"tags":null}`, true, `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, rerr := decodeTwinUpdate([]byte(tt.body), "dev", "", tt.replace)
			if rerr != nil {
				t.Fatalf("decodeTwinUpdate: %s", rerr.message)
			}
			got, err := u.apply(cloneTags(start))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(got)
			if string(b) != tt.want {
				t.Errorf("tags = %s, want %s", b, tt.want)
			}
		})
	}
	u, _ := decodeTwinUpdate([]byte(`{"tags":{"big":"`+strings.Repeat("x", 4000)+`"}}`), "dev", "", false)
	tags := map[string]any{"a": strings.Repeat("y", 4000), "b": strings.Repeat("z", 1000)}
	if _, err := u.apply(tags); err == nil || !strings.Contains(err.Error(), "more than the 8192 allowed") {
		t.Errorf("apply over 8 KB = %v, want a size error", err)
	}
}

// TestTwinTagsREST sets tags with PATCH and PUT, on a device and a module,
// with and without the right etag, and reads them back.
func TestTwinTagsREST(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev", "dev/mod"}})
	svc := h.ServiceClient()
	token := svc.Token(time.Hour)
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()

	before, err := svc.GetTwin(ctx, "dev", "")
	if err != nil {
		t.Fatal(err)
	}
	if before.ETag != "AAAAAAAAAAE=" || before.Version != 1 || len(before.Tags) != 0 {
		t.Fatalf("new twin: etag %q version %d tags %v; want AAAAAAAAAAE=, 1, none", before.ETag, before.Version, before.Tags)
	}
	after, err := svc.UpdateTwinTags(ctx, "dev", "", map[string]any{"floor": 3, "loc": map[string]any{"bldg": "43"}}, before.ETag)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"floor": 3.0, "loc": map[string]any{"bldg": "43"}}
	if diff := cmp.Diff(want, after.Tags); diff != "" || after.Version != 2 || after.ETag == before.ETag {
		t.Errorf("after PATCH: version %d etag %q, tags (-want +got):\n%s", after.Version, after.ETag, diff)
	}
	_, err = svc.UpdateTwinTags(ctx, "dev", "", map[string]any{"floor": 4}, before.ETag)
	var se *ServiceError
	if !errors.As(err, &se) || se.HTTPStatus != 412 || se.ErrorCode != 412001 || se.Name != "PreconditionFailed" {
		t.Errorf("PATCH with a stale etag = %v, want 412 412001 PreconditionFailed", err)
	}
	// The etag unquoted (as the Node SDK sends it) and "*" both match.
	for _, match := range []string{after.ETag, "*"} {
		got, _, _ := requestRaw(t, h, http.MethodPatch, "/twins/dev?api-version=2021-04-12", token, `{"tags":{"n":1}}`, "If-Match", match)
		if got.HTTPStatus != 200 {
			t.Errorf("PATCH with If-Match %q = %+v, want 200", match, got)
		}
	}
	replaced, _, body := requestRaw(t, h, http.MethodPut, "/twins/dev?api-version=2021-04-12", token, `{"deviceId":"dev","etag":"ignored","tags":{"only":true},"properties":{"desired":{"$version":1}}}`)
	if replaced.HTTPStatus != 200 || !strings.Contains(string(body), `"tags":{"only":true}`) || !strings.Contains(string(body), `"version":5`) {
		t.Errorf("PUT = %+v %s, want 200 with only the new tags at version 5", replaced, body)
	}
	module, err := svc.UpdateTwinTags(ctx, "dev", "mod", map[string]any{"role": "fan"}, "")
	if err != nil || module.ModuleID != "mod" || module.Tags["role"] != "fan" {
		t.Errorf("module PATCH = %+v, %v; want the module's twin with its tag", module, err)
	}
	if dev, _ := svc.GetTwin(ctx, "dev", ""); dev == nil || dev.Tags["role"] != nil {
		t.Errorf("the module's tag reached its device's twin: %+v", dev)
	}

	refusals := []struct {
		name, method, path, body string
		want                     restAnswer
	}{
		{"unknown device", http.MethodPatch, "/twins/nobody?api-version=2021-04-12", `{"tags":{}}`, restAnswer{404, "DeviceNotFound", 404001, "Device nobody not registered", map[string]string{}}},
		{"unknown module", http.MethodPatch, "/twins/dev/modules/nope?api-version=2021-04-12", `{"tags":{}}`, restAnswer{404, "ModuleNotFound", 404010, "Module nope of device dev not registered", map[string]string{}}},
		{"bad body", http.MethodPatch, "/twins/dev?api-version=2021-04-12", `{"tags":{"a.b":1}}`, restAnswer{400, "ArgumentInvalid", 400004, `tags: the key "a.b" has the character '.', which keys may not have`, map[string]string{}}},
		{"over 8 KB", http.MethodPatch, "/twins/dev?api-version=2021-04-12", `{"tags":{"a":"` + strings.Repeat("x", 4000) + `","b":"` + strings.Repeat("x", 4000) + `","c":"` + strings.Repeat("x", 1000) + `"}}`, restAnswer{400, "ArgumentInvalid", 400004, "the tags section would be 9034 bytes, more than the 8192 allowed", map[string]string{}}},
		{"DELETE", http.MethodDelete, "/twins/dev?api-version=2021-04-12", ``, restAnswer{405, "InvalidOperation", 400003, "The requested resource does not support http method 'DELETE'.", map[string]string{}}},
		{"no api-version", http.MethodPatch, "/twins/dev", `{"tags":{}}`, restAnswer{400, "InvalidProtocolVersion", 400001, "The api-version query parameter is required.", map[string]string{}}},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			got, _, _ := requestRaw(t, h, tt.method, tt.path, token, tt.body)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
		})
	}
	if dev, _ := svc.GetTwin(ctx, "dev", ""); dev == nil || dev.Version != 5 {
		t.Errorf("refused updates changed the twin: %+v", dev)
	}
}

// TestTwinTagsPersist checks that tags and versions survive a restart of a
// hub with a directory.
func TestTwinTagsPersist(t *testing.T) {
	dir := t.TempDir()
	h := startHub(t, Options{Dir: dir, Devices: []string{"dev", "dev/mod"}})
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if _, err := h.ServiceClient().UpdateTwinTags(ctx, "dev", "mod", map[string]any{"big": maxTagInteger}, ""); err != nil {
		t.Fatal(err)
	}
	h.Close()
	h2 := startHub(t, Options{Dir: dir})
	twin, err := h2.ServiceClient().GetTwin(ctx, "dev", "mod")
	if err != nil {
		t.Fatal(err)
	}
	if twin.Version != 2 {
		t.Errorf("version after restart = %d, want 2", twin.Version)
	}
	var raw struct{ Tags json.RawMessage }
	_, _, body := requestRaw(t, h2, http.MethodGet, "/twins/dev/modules/mod?api-version=2021-04-12", h2.ServiceClient().Token(time.Hour), "")
	if err := json.Unmarshal(body, &raw); err != nil || string(raw.Tags) != `{"big":4503599627370495}` {
		t.Errorf("tags after restart = %s (%v), want the exact integer", raw.Tags, err)
	}
}

func FuzzDecodeTwinUpdate(f *testing.F) {
	for _, seed := range []string{
		`{"tags":{"floor":3,"loc":{"bldg":"43"}}}`,
		`{"deviceId":"dev","etag":"AAAAAAAAAAE=","tags":{"a":null},"properties":{"desired":{"$version":1}}}`,
		`{"tags":{"a":[1]}}`, `{"tags":{"a.b":1}}`, `{"tags":1e400}`, `{"tags":{"n":-0.0}}`, `null`, `{`,
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, replace bool) {
		u, rerr := decodeTwinUpdate(body, "dev", "", replace)
		if rerr != nil {
			if rerr.code != 400004 {
				t.Fatalf("refusal code %d, want 400004", rerr.code)
			}
			return
		}
		tags, err := u.apply(map[string]any{"x": json.Number("1")})
		if err != nil {
			return
		}
		if _, err := json.Marshal(tags); err != nil {
			t.Fatalf("accepted tags do not encode: %v", err)
		}
		if err := validateTagObject(tags, "tags", 1, false); err != nil {
			t.Fatalf("accepted tags are invalid: %v", err)
		}
	})
}
