package mqttwire

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseRequestTopic(t *testing.T) {
	tests := []struct {
		topic    string
		name     string
		rid      string
		wantFail bool
	}{
		{topic: "$iothub/methods/POST/turnOnFan/?$rid=1", name: "turnOnFan", rid: "1"},
		{topic: "$iothub/methods/POST/component*command/?$rid=ff0a", name: "component*command", rid: "ff0a"},
		{topic: "$iothub/methods/POST/a%20b/?$rid=x%2Fy", name: "a%20b", rid: "x%2Fy"}, // nothing is decoded
		{topic: "$iothub/methods/POST/m/?$rid=42&extra=1", name: "m", rid: "42"},
		{topic: "$iothub/methods/POST/m+n/?$rid=1?2", name: "m+n", rid: "1?2"},
		{topic: "", wantFail: true},
		{topic: "$iothub/methods/POST/", wantFail: true},
		{topic: "$iothub/methods/POST/m", wantFail: true},
		{topic: "$iothub/methods/POST/m/", wantFail: true},
		{topic: "$iothub/methods/POST/m/?rid=1", wantFail: true},
		{topic: "$iothub/methods/POST//?$rid=1", wantFail: true},
		{topic: "$iothub/methods/POST/m/?$rid=", wantFail: true},
		{topic: "$iothub/methods/POST/m/?$rid=&x=1", wantFail: true},
		{topic: "$iothub/methods/POST/a/b/?$rid=1", wantFail: true},
		{topic: "$iothub/methods/POST/m/?$rid=1/2", wantFail: true},
		{topic: "$iothub/methods/res/200/?$rid=1", wantFail: true},
		{topic: "$iothub/twin/res/200/?$rid=1", wantFail: true},
		{topic: "$IOTHUB/methods/POST/m/?$rid=1", wantFail: true},
	}
	for _, tt := range tests {
		t.Run(tt.topic, func(t *testing.T) {
			name, rid, err := ParseRequestTopic(tt.topic)
			if tt.wantFail {
				if !errors.Is(err, ErrBadTopic) {
					t.Fatalf("ParseRequestTopic(%q) = %q, %q, %v; want an error wrapping ErrBadTopic", tt.topic, name, rid, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRequestTopic(%q): %v", tt.topic, err)
			}
			if diff := cmp.Diff([]string{tt.name, tt.rid}, []string{name, rid}); diff != "" {
				t.Errorf("name, rid (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAppendResponseTopic(t *testing.T) {
	tests := []struct {
		prefix string
		status int
		rid    string
		want   string
	}{
		{status: 200, rid: "1", want: "$iothub/methods/res/200/?$rid=1"},
		{status: 501, rid: "ff0a", want: "$iothub/methods/res/501/?$rid=ff0a"},
		{status: 0, rid: "x", want: "$iothub/methods/res/0/?$rid=x"},
		{prefix: "keep:", status: 404, rid: "abc", want: "keep:$iothub/methods/res/404/?$rid=abc"},
	}
	for _, tt := range tests {
		got := string(AppendResponseTopic([]byte(tt.prefix), tt.status, tt.rid))
		if got != tt.want {
			t.Errorf("AppendResponseTopic(%q, %d, %q) = %q, want %q", tt.prefix, tt.status, tt.rid, got, tt.want)
		}
	}
}

func TestAppendResponseTopicAllocations(t *testing.T) {
	buf := make([]byte, 0, 128)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendResponseTopic(buf[:0], 200, "0123456789abcdef")
	})
	if allocs != 0 {
		t.Errorf("AppendResponseTopic with a reused buffer allocates %v times, want 0", allocs)
	}
}

func FuzzParseRequestTopic(f *testing.F) {
	for _, seed := range []string{
		"$iothub/methods/POST/turnOnFan/?$rid=1",
		"$iothub/methods/POST/m/?$rid=42&extra=1",
		"$iothub/methods/POST//?$rid=1",
		"$iothub/methods/POST/a/b/?$rid=1",
		"$iothub/methods/POST/m/?$rid=",
		"$iothub/methods/POST/m/?$rid=/?$rid=",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		name, rid, err := ParseRequestTopic(topic)
		if err != nil {
			if !errors.Is(err, ErrBadTopic) {
				t.Fatalf("error %v does not wrap ErrBadTopic", err)
			}
			return
		}
		if name == "" || rid == "" || strings.Contains(name, "/") || strings.Contains(rid, "/") {
			t.Fatalf("ParseRequestTopic(%q) = %q, %q: empty or with '/'", topic, name, rid)
		}
		// The canonical topic is the input, or the input up to extra
		// properties after the request id.
		canonical := RequestPrefix + name + RIDSeparator + rid
		if topic != canonical && !strings.HasPrefix(topic, canonical+"&") {
			t.Fatalf("ParseRequestTopic(%q) = %q, %q, which rebuild %q", topic, name, rid, canonical)
		}
		if strings.Contains(rid, "&") {
			t.Fatalf("rid %q keeps a property separator", rid)
		}
		// A canonical topic parses back to the same parts.
		n2, r2, err := ParseRequestTopic(canonical)
		if err != nil || n2 != name || r2 != rid {
			t.Fatalf("canonical %q parses to %q, %q, %v", canonical, n2, r2, err)
		}
	})
}

func BenchmarkParseRequestTopic(b *testing.B) {
	topic := "$iothub/methods/POST/turnOnFan/?$rid=1f3a"
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseRequestTopic(topic); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendResponseTopic(b *testing.B) {
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendResponseTopic(buf[:0], 200, "1f3a")
	}
}
