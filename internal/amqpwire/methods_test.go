package amqpwire

import "testing"

func TestMethodsAddress(t *testing.T) {
	tests := []struct{ device, module, want string }{
		{"d1", "", "/devices/d1/methods/devicebound"},
		{"d1", "m1", "/devices/d1/modules/m1/methods/devicebound"},
	}
	for _, tt := range tests {
		if got := MethodsAddress(tt.device, tt.module); got != tt.want {
			t.Errorf("MethodsAddress(%q, %q) = %q, want %q", tt.device, tt.module, got, tt.want)
		}
	}
}
