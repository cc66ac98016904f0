package sastoken

import "strings"

// Covers reports whether the token grants access to target, a decoded
// resource URI such as sas.Resource returns. See the function Covers.
func (t *Token) Covers(target string) bool { return Covers(t.Resource, target) }

// Covers reports whether a token issued for resource grants access to
// target. Both are decoded resource URIs. The token's resource must be a
// prefix of the target by whole path segments ("h/devices/a" covers
// "h/devices/a/modules/m" but not "h/devices/ab"); the host is compared
// case-insensitively, the rest exactly (device ids are case-sensitive).
// A leading "amqps://" or "https://" on either side is ignored.
func Covers(resource, target string) bool {
	rs := strings.Split(trimScheme(resource), "/")
	ts := strings.Split(trimScheme(target), "/")
	if rs[len(rs)-1] == "" && len(rs) > 1 { // tolerate one trailing slash
		rs = rs[:len(rs)-1]
	}
	if len(rs) > len(ts) || rs[0] == "" || !strings.EqualFold(hostOnly(rs[0]), hostOnly(ts[0])) {
		return false
	}
	for i := 1; i < len(rs); i++ {
		if rs[i] != ts[i] {
			return false
		}
	}
	return true
}

func trimScheme(s string) string {
	for _, p := range []string{"amqps://", "https://"} {
		if len(s) >= len(p) && strings.EqualFold(s[:len(p)], p) {
			return s[len(p):]
		}
	}
	return s
}

// hostOnly drops a ":port" suffix, which some SDKs put in AMQP audiences.
func hostOnly(s string) string {
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		return s[:i]
	}
	return s
}
