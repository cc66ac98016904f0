package device

import (
	"errors"
	"fmt"
	"regexp"
)

// maxModelIDLength bounds a model ID. It keeps the MQTT username, which
// carries the ID, far below MQTT's 65,535-byte limit on it.
const maxModelIDLength = 2048

// modelIDPattern is a user DTMI with a version, the form of an IoT Plug
// and Play model's @id: "dtmi:", colon-separated segments of letters,
// digits and underscores that start with a letter and do not end with an
// underscore, then ";" and a version of up to nine digits without a
// leading zero, optionally followed by "." and a minor version of up to
// six. This is the DTMI specification's grammar
// (https://azure.github.io/opendigitaltwins-dtdl/DTMI) without its
// system segments and fragments, which name no device model, and with
// the version required.
var modelIDPattern = regexp.MustCompile(`^dtmi:[A-Za-z](?:[A-Za-z0-9_]*[A-Za-z0-9])?(?::[A-Za-z](?:[A-Za-z0-9_]*[A-Za-z0-9])?)*;[1-9][0-9]{0,8}(?:\.[1-9][0-9]{0,5})?$`)

// errNotDTMI is wrapped by validateModelID's errors.
var errNotDTMI = errors.New("not a versioned DTMI")

// validateModelID accepts "" (no model) and versioned user DTMIs.
func validateModelID(id string) error {
	switch {
	case id == "":
		return nil
	case len(id) > maxModelIDLength:
		return fmt.Errorf("%w: longer than %d characters", errNotDTMI, maxModelIDLength)
	case !modelIDPattern.MatchString(id):
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
