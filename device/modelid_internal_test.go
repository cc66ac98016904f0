package device

import (
	"regexp"
	"testing"
)

// dtmiPattern is the grammar isVersionedDTMI implements, as a regular
// expression: the reference the scanner is checked against.
var dtmiPattern = regexp.MustCompile(`^dtmi:[A-Za-z](?:[A-Za-z0-9_]*[A-Za-z0-9])?(?::[A-Za-z](?:[A-Za-z0-9_]*[A-Za-z0-9])?)*;[1-9][0-9]{0,8}(?:\.[1-9][0-9]{0,5})?$`)

// FuzzVersionedDTMI checks the scanner against the regular expression.
func FuzzVersionedDTMI(f *testing.F) {
	for _, seed := range []string{
		"dtmi:com:example:TemperatureController;2", "dtmi:a;1.5", "dtmi:a_b:c9;123456789.123456",
		"dtmi:_a;1", "dtmi:a_;1", "dtmi:a;01", "dtmi:a;1.", "dtmi:a::b;1", "dtmi:;1", "dtmi:a;1234567890", "DTMI:a;1", "dtmi:a;1;2",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if got, want := isVersionedDTMI(id), dtmiPattern.MatchString(id); got != want {
			t.Errorf("isVersionedDTMI(%q) = %v, the grammar says %v", id, got, want)
		}
	})
}
