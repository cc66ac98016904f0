package localhub

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDecodeMethodResult(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    *MethodResult
		wantErr bool
	}{
		{"hub form, JSON", `{"status":200,"payload":{"a":1}}`, &MethodResult{200, json.RawMessage(`{"a":1}`)}, false},
		{"hub form, null", `{"status":204,"payload":null}`, &MethodResult{204, json.RawMessage(`null`)}, false},
		{"hub form, not JSON", `{"status":200,"payload":not json}`, &MethodResult{200, json.RawMessage(`not json`)}, false},
		{"hub form, negative status", `{"status":-1,"payload":1}`, &MethodResult{-1, json.RawMessage(`1`)}, false},
		{"hub form, payload that looks like a field", `{"status":200,"payload":1,"status":500}`, &MethodResult{200, json.RawMessage(`1,"status":500`)}, false},
		{"hub form, empty payload", `{"status":200,"payload":}`, &MethodResult{200, json.RawMessage(``)}, false},
		{"other JSON form", `{ "payload": {"a": 1}, "status": 201 }`, &MethodResult{201, json.RawMessage(`{"a": 1}`)}, false},
		{"JSON without payload", `{"status":201}`, &MethodResult{Status: 201}, false},
		{"leading zero is not the hub form", `{"status":0200,"payload":1}`, nil, true},
		{"no status", `{"payload":1}`, nil, true},
		{"status not a number", `{"status":"200","payload":1}`, nil, true},
		{"not an object", `[]`, nil, true},
		{"empty", ``, nil, true},
		{"cut short", `{"status":200,"payload":1`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeMethodResult([]byte(tt.body))
			if (err != nil) != tt.wantErr {
				t.Fatalf("decodeMethodResult(%q) error = %v, want error %v", tt.body, err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, errBadMethodResult) {
				t.Errorf("error %v does not wrap errBadMethodResult", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decodeMethodResult(%q) (-want +got):\n%s", tt.body, diff)
			}
		})
	}
}
