// Package secrettest checks, in tests, that printed output does not show
// a secret's bytes.
package secrettest

import (
	"fmt"
	"strconv"
	"strings"
)

// ShowsBytes reports whether out shows the start of secret, a byte slice,
// as fmt would print it: in decimal ([1 2 3]), as Go syntax
// ([]byte{0x1, 0x2}), in hexadecimal or raw.
func ShowsBytes(out string, secret []byte) bool {
	head := secret[:4]
	var dec, hex []string
	for _, b := range head {
		dec = append(dec, strconv.Itoa(int(b)))
		hex = append(hex, fmt.Sprintf("0x%x", b))
	}
	return strings.Contains(out, strings.Join(dec, " ")) ||
		strings.Contains(out, strings.Join(hex, ", ")) ||
		strings.Contains(out, fmt.Sprintf("%x", head)) ||
		strings.Contains(out, string(head))
}
