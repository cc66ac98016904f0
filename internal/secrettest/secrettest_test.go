package secrettest

import (
	"fmt"
	"testing"
)

func TestShowsBytes(t *testing.T) {
	secret := []byte{0xde, 0xad, 0xbe, 0xef, 0x01}
	tests := []struct {
		name string
		out  string
		want bool
	}{
		{"%v", fmt.Sprintf("%v", secret), true},
		{"%#v", fmt.Sprintf("%#v", secret), true},
		{"%x", fmt.Sprintf("%x", secret), true},
		{"raw", string(secret), true},
		{"redacted", "key=<redacted>", false},
	}
	for _, tt := range tests {
		if got := ShowsBytes(tt.out, secret); got != tt.want {
			t.Errorf("%s: ShowsBytes(%q) = %v, want %v", tt.name, tt.out, got, tt.want)
		}
	}
}
