package sas

import (
	"errors"
	"fmt"
)

// MaxIDLength is the longest device or module id the hub accepts.
const MaxIDLength = 128

// ErrInvalidID reports a device id, module id or host name that the hub
// would refuse.
var ErrInvalidID = errors.New("sas: invalid identifier")

// ValidateHostName reports whether name is a plausible hub or gateway host
// name: letters, digits, '-', '_' and '.', as the hub's own connection-string
// builder requires. A port is not part of a host name.
func ValidateHostName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty host name", ErrInvalidID)
	}
	if len(name) > 253 {
		return fmt.Errorf("%w: host name longer than 253 characters", ErrInvalidID)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return fmt.Errorf("%w: host name has character %q at %d", ErrInvalidID, c, i)
		}
	}
	return nil
}

// ValidateID reports whether id is a valid device or module id: 1 to 128
// characters from letters, digits and -:.+%_#*?!(),=@;$'.
func ValidateID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty id", ErrInvalidID)
	}
	if len(id) > MaxIDLength {
		return fmt.Errorf("%w: id longer than %d characters", ErrInvalidID, MaxIDLength)
	}
	for i := 0; i < len(id); i++ {
		if !isIDChar(id[i]) {
			return fmt.Errorf("%w: id has character %q at %d", ErrInvalidID, id[i], i)
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
