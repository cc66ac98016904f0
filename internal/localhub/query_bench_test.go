package localhub

import (
	"encoding/json"
	"testing"
)

// The cost of a query per twin: turning the twin into the generic document
// conditions read (a JSON round trip), and evaluating a condition on it.
// A query over the whole registry pays both for every twin.

func benchTwin() twinJSON {
	return twinJSON{DeviceID: "fan-0042", Status: "enabled", ConnectionState: "Connected",
		Tags: map[string]any{"floor": json.Number("3"), "kind": "fan", "site": map[string]any{"bldg": "43", "wing": "north"}}}
}

func BenchmarkQueryDocument(b *testing.B) {
	twin := benchTwin()
	for b.Loop() {
		if queryDocument(twin) == nil {
			b.Fatal("no document")
		}
	}
}

func BenchmarkQueryCondition(b *testing.B) {
	q, err := parseQuery("SELECT * FROM devices WHERE tags.kind = 'fan' AND tags.site.wing IN ['north', 'east'] AND status = 'enabled'")
	if err != nil {
		b.Fatal(err)
	}
	doc := queryDocument(benchTwin())
	for b.Loop() {
		if !q.matches(doc) {
			b.Fatal("no match")
		}
	}
}
