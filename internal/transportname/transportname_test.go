package transportname

import "testing"

func TestDialer(t *testing.T) {
	for _, tt := range []struct {
		name   string
		ws, ok bool
	}{{"mqtt", false, true}, {"mqtt-ws", true, true}, {"MQTT", false, false}, {"", false, false}, {"carrier-pigeon", false, false}} {
		d, ws, err := Dialer(tt.name)
		if (err == nil) != tt.ok || ws != tt.ws || (d != nil) != tt.ok {
			t.Errorf("Dialer(%q) = %v, %v, %v", tt.name, d, ws, err)
		}
	}
}
