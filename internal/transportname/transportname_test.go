package transportname

import "testing"

func TestDialer(t *testing.T) {
	for _, tt := range []struct {
		name   string
		ws, ok bool
	}{
		{"mqtt", false, true}, {"mqtt-ws", true, true}, {"amqp", false, true}, {"amqp-ws", true, true},
		{"MQTT", false, false}, {"", false, false}, {"carrier-pigeon", false, false},
	} {
		d, ws, err := Dialer(tt.name)
		if (err == nil) != tt.ok || ws != tt.ws || (d != nil) != tt.ok {
			t.Errorf("Dialer(%q) = %v, %v, %v", tt.name, d, ws, err)
		}
	}
}

func TestPortsFor(t *testing.T) {
	p := Ports{MQTT: 8883, AMQP: 5671, HTTPS: 443}
	for name, want := range map[string]int{"mqtt": 8883, "mqtt-ws": 443, "amqp": 5671, "amqp-ws": 443} {
		if got := p.For(name); got != want {
			t.Errorf("For(%q) = %d, want %d", name, got, want)
		}
	}
}
