// Package idcheck checks the host names and the device and module ids the
// SDK and the local hub accept, as IoT Hub does: the connection-string
// parser, the clients' constructors, the provisioning result and the hub's
// registry and protocol front ends all apply the same rules.
package idcheck

import (
	"errors"
	"fmt"
)

// MaxIDLength is the longest device or module id IoT Hub accepts.
const MaxIDLength = 128

// ErrInvalid reports a device id, module id or host name that IoT Hub
// would refuse.
var ErrInvalid = errors.New("invalid identifier")

// HostName reports whether name is a plausible hub or gateway host
// name: letters, digits, '-', '_' and '.', as the hub's own connection-string
// builder requires. A port is not part of a host name.
func HostName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty host name", ErrInvalid)
	}
	if len(name) > 253 {
		return fmt.Errorf("%w: host name longer than 253 characters", ErrInvalid)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return fmt.Errorf("%w: host name has character %q at %d", ErrInvalid, c, i)
		}
	}
	return nil
}

// ID reports whether id is a valid device or module id: 1 to 128
// characters from letters, digits and -:.+%_#*?!(),=@;$'.
func ID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty id", ErrInvalid)
	}
	if len(id) > MaxIDLength {
		return fmt.Errorf("%w: id longer than %d characters", ErrInvalid, MaxIDLength)
	}
	for i := 0; i < len(id); i++ {
		if !isIDChar(id[i]) {
			return fmt.Errorf("%w: id has character %q at %d", ErrInvalid, id[i], i)
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isIDChar(c byte) bool {
	if isAlnum(c) {
		return true
	}
	switch c {
	case '-', ':', '.', '+', '%', '_', '#', '*', '?', '!', '(', ')', ',', '=', '@', ';', '$', '\'':
		return true
	}
	return false
}
