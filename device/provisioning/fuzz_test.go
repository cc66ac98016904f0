package provisioning

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzAnswer: no body DPS (or anything posing as it) sends makes the
// client panic, and a cached result that parses reads back the same.
func FuzzAnswer(f *testing.F) {
	for _, s := range []string{assigning, assigned, `{"errorCode":401002,"trackingId":"t","message":"m"}`,
		`{"operationId":"x","status":"failed","registrationState":{"errorCode":"400207"}}`, `{"status":"assigned"}`, `null`, `[]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := &registration{c: &Client{}}
		for _, status := range []int{200, 202, 401, 404, 429, 500} {
			_, _, _ = r.handle(answer{status: status, body: []byte(body)})
		}
		_ = newError(401, []byte(body)).Error()
		res, err := ParseResult([]byte(body))
		if err != nil {
			return
		}
		data, err := json.Marshal(res)
		if err != nil {
			t.Fatalf("Marshal of a parsed result: %v", err)
		}
		again, err := ParseResult(data)
		if err != nil {
			t.Fatalf("a marshalled result does not parse: %v", err)
		}
		data2, err := json.Marshal(again)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(data), string(data2)); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}
