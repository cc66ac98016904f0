package idcheck

import (
	"errors"
	"strings"
	"testing"
)

func TestID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"device-1", true},
		{"a", true},
		{"-:.+%_#*?!(),=@;$'", true},
		{strings.Repeat("x", MaxIDLength), true},
		{"", false},
		{strings.Repeat("x", MaxIDLength+1), false},
		{"dev/mod", false},
		{"dev ice", false},
		{"dév", false},
		{"a&b", false},
	}
	for _, tt := range tests {
		err := ID(tt.id)
		if (err == nil) != tt.ok {
			t.Errorf("ID(%q) = %v, want ok %v", tt.id, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ID(%q) = %v, not ErrInvalid", tt.id, err)
		}
	}
}

func TestHostName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"hub.azure-devices.net", true},
		{"localhost", true},
		{"edge_gateway-1.local", true},
		{strings.Repeat("a", 253), true},
		{"", false},
		{strings.Repeat("a", 254), false},
		{"hub:8883", false},
		{"hub/path", false},
		{"a b", false},
	}
	for _, tt := range tests {
		err := HostName(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("HostName(%q) = %v, want ok %v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("HostName(%q) = %v, not ErrInvalid", tt.name, err)
		}
	}
}
