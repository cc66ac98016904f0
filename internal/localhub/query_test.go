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

func TestParseQueryErrors(t *testing.T) {
	tests := []struct {
		query     string
		line, col int
		msg       string
	}{
		{"", 1, 1, "expected SELECT, found the end of the query"},
		{"SELECT", 1, 7, "only SELECT * is supported by this hub"},
		{"SELECT deviceId FROM devices", 1, 8, "only SELECT * is supported"},
		{"SELECT TOP 5 * FROM devices", 1, 8, "TOP is not supported"},
		{"SELECT * FROM", 1, 14, "expected devices, devices.modules or devices.jobs after FROM, found the end of the query"},
		{"SELECT * FROM things", 1, 15, "found 'things'"},
		{"SELECT * FROM devices.twins", 1, 23, "found devices.'twins'"},
		{"SELECT * FROM devices WHERE", 1, 28, "expected a property, a value or IS_DEFINED(...), found the end of the query"},
		{"SELECT * FROM devices WHERE tags.floor =", 1, 41, "expected a property, a value"},
		{"SELECT * FROM devices WHERE tags.floor = 'x", 1, 42, "the string is not closed"},
		{"SELECT * FROM devices WHERE a = 'b\\n'", 1, 33, `the escape \n is not one of`},
		{"SELECT * FROM devices WHERE a = '\\u12'", 1, 33, `a \u escape needs 4 hexadecimal digits`},
		{"SELECT * FROM devices\n  WHERE (a = 1", 2, 15, "expected ) to close the ( at 2:9, found the end of the query"},
		{"SELECT * FROM devices WHERE a IN ['x', ]", 1, 40, "expected a value in the list"},
		{"SELECT * FROM devices WHERE a IN ('x')", 1, 34, "expected [ to start the list"},
		{"SELECT * FROM devices WHERE a IN ['x' 'y']", 1, 39, "expected , or ] in the list started at 1:34"},
		{"SELECT * FROM devices WHERE a IN [b]", 1, 35, "expected a value in the list, found 'b'"},
		{"SELECT * FROM devices WHERE a = 1 b = 2", 1, 35, "unexpected 'b' after the condition"},
		{"SELECT * FROM devices WHERE a == 1", 1, 32, "expected a property, a value"},
		{"SELECT * FROM devices WHERE a = 1 &", 1, 35, `unexpected character '&'`},
		{"SELECT * FROM devices WHERE a = 12x", 1, 33, "invalid number 12x"},
		{"SELECT * FROM devices WHERE a = 0xZ", 1, 33, "invalid hexadecimal number 0x"},
		{"SELECT * FROM devices WHERE STARTSWITH(deviceId, 'a')", 1, 29, "the function STARTSWITH is not supported by this hub"},
		{"SELECT * FROM devices WHERE IS_DEFINED(1)", 1, 40, "expected a property in IS_DEFINED(...)"},
		{"SELECT * FROM devices WHERE IS_DEFINED(a", 1, 41, "expected ) to close IS_DEFINED( at 1:29"},
		{"SELECT * FROM devices WHERE a. = 1", 1, 32, "expected a property name after '.'"},
		{"SELECT * FROM devices GROUP BY tags.x", 1, 23, "GROUP BY is not supported"},
		{"SELECT * FROM devices WHERE " + strings.Repeat("(", 40) + "a = 1" + strings.Repeat(")", 40), 1, 61, "nests more than 32 levels deep"},
		{"SELECT * FROM devices WHERE " + strings.Repeat("NOT ", 40) + "a", 1, 157, "nests more than 32 levels deep"},
		{"SELECT * FROM devices WHERE a = '" + strings.Repeat("x", maxQueryLength) + "'", 1, 1, "more than the 8192 this hub takes"},
	}
	for _, tt := range tests {
		_, err := parseQuery(tt.query)
		var qe *QueryError
		if !errors.As(err, &qe) {
			t.Errorf("parseQuery(%q) = %v, want a *QueryError", clip(tt.query), err)
			continue
		}
		if qe.Line != tt.line || qe.Column != tt.col || !strings.Contains(qe.Msg, tt.msg) {
			t.Errorf("parseQuery(%q) = %q at %d:%d, want %q at %d:%d", clip(tt.query), qe.Msg, qe.Line, qe.Column, tt.msg, tt.line, tt.col)
		}
	}
}

func TestParseConditionErrors(t *testing.T) {
	tests := []struct {
		condition string
		col       int
		msg       string
	}{
		{"", 1, "the query condition is empty"},
		{"SELECT * FROM devices", 1, "expected a property, a value or IS_DEFINED(...), found 'SELECT'"},
		{"FROM devices.jobs WHERE a = 1", 14, "found devices.'jobs'"},
		{"FROM devices tags.a = 1", 14, "expected WHERE after the FROM clause"},
		{"tags.a = 1 ORDER BY deviceId", 12, "unexpected 'ORDER' after the condition"},
	}
	for _, tt := range tests {
		_, err := parseCondition(tt.condition)
		var qe *QueryError
		if !errors.As(err, &qe) || qe.Column != tt.col || !strings.Contains(qe.Msg, tt.msg) {
			t.Errorf("parseCondition(%q) = %v, want %q at column %d", tt.condition, err, tt.msg, tt.col)
		}
	}
}

// TestQueryConditions evaluates conditions against a twin and a device
// job, with IoT Hub's three-valued logic.
func TestQueryConditions(t *testing.T) {
	twin := queryDocument(twinJSON{DeviceID: "fan-1", Status: "enabled", ConnectionState: "Connected", ModelID: "dtmi:x;1",
		Tags: map[string]any{"floor": json.Number("3"), "name": "Fan \"A\"", "on": true, "none": nil, "loc": map[string]any{"bldg": "43", "wing": "north"}}})
	tests := []struct {
		where string
		want  bool
	}{
		{"deviceId = 'fan-1'", true},
		{"DeviceId = \"fan-1\"", true}, // names match ignoring case, as IoT Hub's do
		{"devices.deviceId = 'fan-1'", true},
		{"deviceId != 'fan-1'", false},
		{"deviceId <> 'fan-2'", true},
		{"deviceId < 'fan-2' AND deviceId >= 'fan-1'", true},
		{"tags.floor = 3", true},
		{"tags.floor = 3.0", true},
		{"tags.floor = 0x3", true},
		{"tags.floor > 2.5 AND tags.floor <= 3", true},
		{"tags.floor = '3'", false},     // different types are undefined
		{"NOT tags.floor = '3'", false}, // and NOT undefined stays undefined
		{"NOT (tags.floor = 4)", true},  // a defined false negates
		{"tags.floor != '3'", false},    // undefined too
		{"tags.missing = 1", false},     // a missing property is undefined
		{"NOT tags.missing = 1", false}, // even negated
		{"tags.missing != 1", false},    // and compared with !=
		{"tags.missing = 1 OR tags.floor = 3", true},
		{"tags.missing = 1 AND tags.floor = 3", false},
		{"tags.name = 'Fan \\\"A\\\"'", true},
		{"tags.name = \"Fan \\u0022A\\u0022\"", true},
		{"tags.on", true},
		{"tags.on = true", true},
		{"tags.on < true", false}, // booleans have no order
		{"tags.name", false},      // a string is not true
		{"tags.none = null", true},
		{"IS_DEFINED(tags.none)", true},
		{"IS_DEFINED(tags.missing)", false},
		{"NOT IS_DEFINED(tags.missing)", true},
		{"tags.loc.bldg IN ['41', '43']", true},
		{"tags.loc.bldg NIN ['41', '43']", false},
		{"tags.loc.bldg NIN ['41']", true},
		{"tags.missing NIN ['41']", false},
		{"tags.floor IN [1, 2, 3]", true},
		{"tags.loc = 'x'", false}, // objects do not compare
		{"status = 'enabled' AND connectionState = 'Connected' AND modelId = 'dtmi:x;1'", true},
		{"(tags.floor = 1 OR tags.floor = 3) AND (tags.loc.wing = 'north')", true},
		{"tags.floor = 1 OR tags.floor = 2 AND tags.floor = 3", false}, // AND binds tighter
		{"true", true},
		{"3 = tags.floor", true},
	}
	for _, tt := range tests {
		q, err := parseQuery("SELECT * FROM devices WHERE " + tt.where)
		if err != nil {
			t.Errorf("%s: %v", tt.where, err)
			continue
		}
		if got := q.matches(twin); got != tt.want {
			t.Errorf("%s = %v, want %v", tt.where, got, tt.want)
		}
	}

	record := queryDocument(DeviceJob{DeviceID: "fan-1", JobID: "job-1", JobType: jobTypeDeviceMethod, Status: deviceJobCompleted})
	for _, where := range []string{"devices.jobs.jobId = 'job-1'", "jobId = 'job-1' AND status = 'completed'", "devices.jobs.jobType = 'scheduleDeviceMethod'"} {
		q, err := parseQuery("select * from DEVICES.JOBS where " + where)
		if err != nil || q.source != sourceJobs || !q.matches(record) {
			t.Errorf("devices.jobs %s: %v, want a match", where, err)
		}
	}
}

// TestDeviceQueryREST queries twins through the REST API, page by page,
// and checks the refusals.
func TestDeviceQueryREST(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"a", "b", "c", "d", "e", "b/mod"}})
	svc := h.ServiceClient()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	for _, id := range []string{"a", "c", "e"} {
		if _, err := svc.UpdateTwinTags(ctx, id, "", map[string]any{"odd": true}, ""); err != nil {
			t.Fatal(err)
		}
	}
	const query = "SELECT * FROM devices WHERE tags.odd = true OR deviceId = 'd'"
	var ids []string
	var pages []int
	continuation := ""
	for range 10 {
		page, err := svc.Query(ctx, query, 2, continuation)
		if err != nil {
			t.Fatal(err)
		}
		if page.ItemType != "twin" {
			t.Errorf("x-ms-item-type = %q, want twin", page.ItemType)
		}
		pages = append(pages, len(page.Items))
		for _, item := range page.Items {
			var twin Twin
			if err := json.Unmarshal(item, &twin); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, twin.DeviceID)
		}
		if continuation = page.Continuation; continuation == "" {
			break
		}
	}
	if diff := cmp.Diff([]string{"a", "c", "d", "e"}, ids); diff != "" || !cmp.Equal([]int{2, 2}, pages) {
		t.Errorf("pages %v, devices (-want +got):\n%s", pages, diff)
	}
	modules, err := svc.QueryAll(ctx, "SELECT * FROM devices.modules")
	if err != nil || len(modules) != 1 || !strings.Contains(string(modules[0]), `"moduleId":"mod"`) {
		t.Errorf("devices.modules = %s, %v; want b/mod", modules, err)
	}

	token := svc.Token(time.Hour)
	first, header, _ := requestRaw(t, h, http.MethodPost, "/devices/query?api-version=2021-04-12", token, `{"query":"`+query+`"}`, maxItemCountHeader, "1")
	if first.HTTPStatus != 200 || header.Get(continuationHeader) == "" {
		t.Fatalf("first page = %+v, want 200 with a continuation", first)
	}
	other := header.Get(continuationHeader)
	const path = "/devices/query?api-version=2021-04-12"
	invalid := func(msg string, info map[string]string) restAnswer {
		return restAnswer{400, "ArgumentInvalid", 400004, msg, info}
	}
	tests := []struct {
		name, path, body string
		header           []string
		want             restAnswer
	}{
		{"syntax error", path, `{"query":"SELECT * FROM devices WHERE tags.floor = "}`, nil,
			invalid("Line 1:42 expected a property, a value or IS_DEFINED(...), found the end of the query", map[string]string{"line": "1", "column": "42"})},
		{"no query", path, `{"sql":"SELECT * FROM devices"}`, nil, invalid(`The request body must be {"query": "SELECT * FROM devices ..."}.`, map[string]string{})},
		{"malformed body", path, `{"query":`, nil, invalid(`The request body must be {"query": "SELECT * FROM devices ..."}.`, map[string]string{})},
		{"zero page size", path, `{"query":"SELECT * FROM devices"}`, []string{maxItemCountHeader, "0"}, invalid(errBadPageSize.Error(), map[string]string{})},
		{"page size not a number", path, `{"query":"SELECT * FROM devices"}`, []string{maxItemCountHeader, "ten"}, invalid(errBadPageSize.Error(), map[string]string{})},
		{"forged continuation", path, `{"query":"SELECT * FROM devices"}`, []string{continuationHeader, "garbage"}, invalid(errBadContinuation.Error(), map[string]string{})},
		{"continuation of another query", path, `{"query":"SELECT * FROM devices"}`, []string{continuationHeader, other}, invalid(errBadContinuation.Error(), map[string]string{})},
		{"GET", path, ``, nil, restAnswer{405, "InvalidOperation", 400003, "The requested resource does not support http method 'GET'.", map[string]string{}}},
		{"device token", path, `{"query":"SELECT * FROM devices"}`, nil, restAnswer{401, "IotHubUnauthorizedAccess", 401002, "Unauthorized", map[string]string{}}},
	}
	devCS, _ := h.ConnectionString("a")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, auth := http.MethodPost, token
			if tt.name == "GET" {
				method = http.MethodGet
			}
			if tt.name == "device token" {
				auth = deviceToken(t, devCS, time.Now().Add(time.Hour))
			}
			got, _, _ := requestRaw(t, h, method, tt.path, auth, tt.body, tt.header...)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
		})
	}
	big, _, body := requestRaw(t, h, http.MethodPost, path, token, `{"query":"SELECT * FROM devices"}`, maxItemCountHeader, "100000")
	var all []json.RawMessage
	if big.HTTPStatus != 200 || json.Unmarshal(body, &all) != nil || len(all) != 5 {
		t.Errorf("a page size over 1000 = %+v with %d items, want all 5", big, len(all))
	}
}

func FuzzParseQuery(f *testing.F) {
	for _, seed := range []string{
		"SELECT * FROM devices",
		"SELECT * FROM devices WHERE tags.floor = 3 AND (status = 'enabled' OR NOT IS_DEFINED(tags.x))",
		"SELECT * FROM devices.jobs WHERE devices.jobs.jobId = \"j\\u0041\" AND status IN ['completed', 'failed']",
		"select * from devices.modules where tags.n NIN [0x1F, -2.5e3, true, null]",
		"SELECT * FROM devices WHERE a <> 'b\\'c'",
		"SELECT * FROM devices WHERE ((((a = 1))))",
		"FROM devices WHERE deviceId = 'x'",
		"tags.floor >= 3",
		"SELECT * FROM devices WHERE 'unterminated",
	} {
		f.Add(seed)
	}
	doc := queryDocument(twinJSON{DeviceID: "d", Tags: map[string]any{"floor": json.Number("3"), "x": map[string]any{"y": "z"}}})
	f.Fuzz(func(t *testing.T, query string) {
		for _, parse := range []func(string) (*parsedQuery, error){parseQuery, parseCondition} {
			q, err := parse(query)
			if err != nil {
				var qe *QueryError
				if !errors.As(err, &qe) || qe.Line < 1 || qe.Column < 1 {
					t.Fatalf("error %v is not a *QueryError with a position", err)
				}
				continue
			}
			q.matches(doc) // must not panic
		}
	})
}
