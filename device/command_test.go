package device_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/directmethods/iotdevice/device"
	"github.com/google/go-cmp/cmp"
)

func TestMethodRequestCommand(t *testing.T) {
	tests := []struct {
		name, component, command string
	}{
		{"reboot", "", "reboot"},
		{"thermostat1*getMaxMinReport", "thermostat1", "getMaxMinReport"},
		{"a*b*c", "a", "b*c"},
		{"*getMaxMinReport", "", "*getMaxMinReport"},
		{"thermostat1*", "", "thermostat1*"},
		{"*", "", "*"},
		{"", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			component, command := (&device.MethodRequest{Name: tt.name}).Command()
			if component != tt.component || command != tt.command {
				t.Errorf("Command() = %q, %q; want %q, %q", component, command, tt.component, tt.command)
			}
		})
	}
}

func FuzzMethodRequestCommand(f *testing.F) {
	for _, s := range []string{"reboot", "thermostat1*getMaxMinReport", "a*b*c", "*x", "x*", "*", "", "**", "ü*ß"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		component, command := (&device.MethodRequest{Name: name}).Command()
		if component == "" {
			if command != name {
				t.Fatalf("default component: command %q, want the whole name %q", command, name)
			}
			return
		}
		if component+"*"+command != name {
			t.Fatalf("%q split into %q and %q, which do not join back", name, component, command)
		}
		if strings.Contains(component, "*") || command == "" {
			t.Fatalf("%q split into %q and %q: the component holds a '*' or the command is empty", name, component, command)
		}
	})
}

// commandEcho answers with the component and command its request names.
func commandEcho(_ context.Context, req *device.MethodRequest) (*device.MethodResponse, error) {
	component, command := req.Command()
	return device.JSONResponse(200, map[string]string{"component": component, "command": command})
}

func TestMethodMuxHandleCommand(t *testing.T) {
	mux := device.NewMethodMux()
	mux.HandleCommandFunc("thermostat1", "getMaxMinReport", commandEcho)
	mux.HandleCommandFunc("thermostat2", "getMaxMinReport", commandEcho)
	mux.HandleCommandFunc("", "reboot", commandEcho)
	mux.HandleFunc("plain", commandEcho)

	tests := []struct {
		method     string
		wantStatus int
		wantBody   string
	}{
		{"thermostat1*getMaxMinReport", 200, `{"command":"getMaxMinReport","component":"thermostat1"}`},
		{"thermostat2*getMaxMinReport", 200, `{"command":"getMaxMinReport","component":"thermostat2"}`},
		{"reboot", 200, `{"command":"reboot","component":""}`},
		{"plain", 200, `{"command":"plain","component":""}`},
		{"thermostat3*getMaxMinReport", 501, `{"error":"method not implemented","method":"thermostat3*getMaxMinReport"}`},
		{"thermostat1*reboot", 501, `{"error":"method not implemented","method":"thermostat1*reboot"}`},
		{"getMaxMinReport", 501, `{"error":"method not implemented","method":"getMaxMinReport"}`},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			resp, err := mux.ServeMethod(t.Context(), &device.MethodRequest{Name: tt.method})
			var status int
			var body json.RawMessage
			var me *device.MethodError
			switch {
			case errors.As(err, &me):
				status, body = me.Status, me.Payload
			case err != nil:
				t.Fatal(err)
			default:
				status, body = resp.Status, resp.Payload
			}
			if diff := cmp.Diff(tt.wantStatus, status); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantBody, string(body)); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMethodMuxHandleCommandPanics(t *testing.T) {
	h := device.MethodHandlerFunc(commandEcho)
	tests := []struct {
		name     string
		register func(m *device.MethodMux)
	}{
		{"empty command", func(m *device.MethodMux) { m.HandleCommand("c", "", h) }},
		{"star in component", func(m *device.MethodMux) { m.HandleCommand("a*b", "c", h) }},
		{"star in command", func(m *device.MethodMux) { m.HandleCommand("a", "b*c", h) }},
		{"nil handler", func(m *device.MethodMux) { m.HandleCommand("a", "b", nil) }},
		{"nil func", func(m *device.MethodMux) { m.HandleCommandFunc("a", "b", nil) }},
		{"duplicate", func(m *device.MethodMux) { m.HandleCommand("a", "b", h); m.HandleCommand("a", "b", h) }},
		{"duplicate of a plain name", func(m *device.MethodMux) { m.Handle("a*b", h); m.HandleCommand("a", "b", h) }},
		{"default component is the plain name", func(m *device.MethodMux) { m.Handle("b", h); m.HandleCommand("", "b", h) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			tt.register(device.NewMethodMux())
		})
	}
}
