package device

import (
	"errors"
	"fmt"
	"strings"
)

// maxModelIDLength bounds a model ID. It keeps the MQTT username, which
// carries the ID, far below MQTT's 65,535-byte limit on it.
const maxModelIDLength = 2048

// isVersionedDTMI reports whether id is a user DTMI with a version, the
// form of an IoT Plug and Play model's @id: "dtmi:", colon-separated
// segments of letters, digits and underscores that start with a letter and
// do not end with an underscore, then ";" and a version of up to nine
// digits without a leading zero, optionally followed by "." and a minor
// version of up to six. This is the DTMI specification's grammar
// (https://azure.github.io/opendigitaltwins-dtdl/DTMI) without its system
// segments and fragments, which name no device model, and with the
// version required. It is written out rather than as a regular
// expression, which would add package regexp to every device's binary.
func isVersionedDTMI(id string) bool {
	rest, ok := strings.CutPrefix(id, "dtmi:")
	if !ok {
		return false
	}
	path, version, ok := strings.Cut(rest, ";")
	if !ok {
		return false
	}
	for _, segment := range strings.Split(path, ":") {
		if !isDTMISegment(segment) {
			return false
		}
	}
	major, minor, hasMinor := strings.Cut(version, ".")
	return isVersionNumber(major, 9) && (!hasMinor || isVersionNumber(minor, 6))
}

// isDTMISegment: a letter, then letters, digits and underscores, not
// ending with an underscore.
func isDTMISegment(s string) bool {
	if s == "" || !isLetter(s[0]) || s[len(s)-1] == '_' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isLetter(c) && !isDigit(c) && c != '_' {
			return false
		}
	}
	return true
}

// isVersionNumber: 1 to maxDigits digits without a leading zero.
func isVersionNumber(s string, maxDigits int) bool {
	if s == "" || len(s) > maxDigits || s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }

// errNotDTMI is wrapped by validateModelID's errors.
var errNotDTMI = errors.New("not a versioned DTMI")

// validateModelID accepts "" (no model) and versioned user DTMIs.
func validateModelID(id string) error {
	switch {
	case id == "":
		return nil
	case len(id) > maxModelIDLength:
		return fmt.Errorf("%w: longer than %d characters", errNotDTMI, maxModelIDLength)
	case !isVersionedDTMI(id):
		return fmt.Errorf(`%w: %q; want the form "dtmi:com:example:Thermostat;1"`, errNotDTMI, clipID(id))
	}
	return nil
}

// clipID shortens an ID quoted in an error.
func clipID(s string) string {
	const max = 80
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
