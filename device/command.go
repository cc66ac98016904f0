package device

import (
	"context"
	"strings"
)

// commandSeparator joins a Plug and Play component and a command into
// the method name the hub sends: "{component}*{command}" (azure-sdk-for-c
// az_iot_hub_client_commands.c, azure-iot-sdk-c COMPONENT_DELIMETER).
const commandSeparator = "*"

// Command returns the IoT Plug and Play component and command the request
// names. A component's command arrives as the method name
// "{component}*{command}" and is split at the first '*'; any other name,
// or one with nothing before or after the '*', is a command of the
// default component, returned as component "" and the whole name.
func (r *MethodRequest) Command() (component, command string) {
	return splitCommand(r.Name)
}

func splitCommand(name string) (component, command string) {
	component, command, found := strings.Cut(name, commandSeparator)
	if !found || component == "" || command == "" {
		return "", name
	}
	return component, command
}

// HandleCommand registers h for the command of an IoT Plug and Play
// component: the method "{component}*{command}". An empty component is
// the default component, whose commands are plain methods (Handle). The
// handler learns the component and command from MethodRequest.Command. A
// command of a component without handlers is answered like any unknown
// method. HandleCommand panics if command is empty, if either name holds
// a '*', if h is nil, or if the command already has a handler.
func (m *MethodMux) HandleCommand(component, command string, h MethodHandler) {
	if command == "" {
		panic("device: MethodMux.HandleCommand with an empty command name")
	}
	if strings.Contains(component, commandSeparator) || strings.Contains(command, commandSeparator) {
		panic("device: MethodMux.HandleCommand with a '*' in " + component + " or " + command)
	}
	if component == "" {
		m.Handle(command, h)
		return
	}
	m.Handle(component+commandSeparator+command, h)
}

// HandleCommandFunc registers f for a component's command, like
// HandleCommand.
func (m *MethodMux) HandleCommandFunc(component, command string, f func(ctx context.Context, req *MethodRequest) (*MethodResponse, error)) {
	if f == nil {
		panic("device: MethodMux.HandleCommandFunc with a nil function for " + component + commandSeparator + command)
	}
	m.HandleCommand(component, command, MethodHandlerFunc(f))
}
