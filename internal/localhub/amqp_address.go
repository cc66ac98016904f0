package localhub

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/directmethods/iotdevice/internal/idcheck"
)

// errBadAddress reports an AMQP address or audience that names no
// identity the hub knows how to serve.
var errBadAddress = errors.New("localhub: not an identity address")

// stripAMQPHost removes an "amqps://host[:port]" prefix (any scheme,
// matched case-insensitively), leaving the path.
func stripAMQPHost(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || strings.ContainsAny(scheme, "/") {
		return s
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		return rest[i:]
	}
	return ""
}

// parseIdentityPath parses "/devices/{d}[/modules/{m}]" followed by the
// given suffix segments (literal segments compare case-insensitively),
// URL-decoding the ids. The leading '/' is optional.
func parseIdentityPath(path string, suffix ...string) (deviceID, moduleID string, err error) {
	segments := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(segments) < len(suffix) {
		return "", "", errBadAddress
	}
	head, tail := segments[:len(segments)-len(suffix)], segments[len(segments)-len(suffix):]
	for i, want := range suffix {
		if !strings.EqualFold(tail[i], want) {
			return "", "", errBadAddress
		}
	}
	var raw []string
	switch {
	case len(head) == 2 && strings.EqualFold(head[0], "devices"):
		raw = head[1:]
	case len(head) == 4 && strings.EqualFold(head[0], "devices") && strings.EqualFold(head[2], "modules"):
		raw = []string{head[1], head[3]}
	default:
		return "", "", errBadAddress
	}
	ids := make([]string, len(raw))
	for i, r := range raw {
		id, err := url.PathUnescape(r)
		if err != nil {
			return "", "", fmt.Errorf("%w: id is not URL-encoded correctly", errBadAddress)
		}
		if err := idcheck.ID(id); err != nil {
			return "", "", fmt.Errorf("%w: %w", errBadAddress, err)
		}
		ids[i] = id
	}
	if len(ids) == 2 {
		return ids[0], ids[1], nil
	}
	return ids[0], "", nil
}

// parseMethodAddress parses the address of a method link:
// "/devices/{d}[/modules/{m}]/methods/devicebound", with or without an
// "amqps://host[:port]" prefix, matched case-insensitively. It returns
// the identity as "dev" or "dev/mod".
func parseMethodAddress(addr string) (string, error) {
	deviceID, moduleID, err := parseIdentityPath(stripAMQPHost(addr), "methods", "devicebound")
	if err != nil {
		return "", err
	}
	return identityName(deviceID, moduleID), nil
}

// parseAudience parses a put-token audience: URL-encoded or not, with or
// without "amqps://", naming "{host}/devices/{d}[/modules/{m}]". A
// host-only audience gives hostOnly true and no identity.
func parseAudience(audience string) (host, identity string, hostOnly bool, err error) {
	decoded, err := url.PathUnescape(audience)
	if err != nil {
		return "", "", false, fmt.Errorf("%w: audience is not URL-encoded correctly", errBadAddress)
	}
	if _, rest, ok := strings.Cut(decoded, "://"); ok {
		decoded = rest
	}
	host, path, hasPath := strings.Cut(decoded, "/")
	if err := idcheck.HostName(host); err != nil {
		return "", "", false, fmt.Errorf("%w: %w", errBadAddress, err)
	}
	if !hasPath || path == "" {
		return host, "", true, nil
	}
	deviceID, moduleID, err := parseIdentityPath(path)
	if err != nil {
		return "", "", false, err
	}
	return host, identityName(deviceID, moduleID), false, nil
}

// parsePlainUsername parses a SASL PLAIN username,
// "{device}@sas.{hub}" or "{device}/modules/{module}@sas.{hub}", and
// returns the identity and the hub name.
func parsePlainUsername(username string) (identity, hubName string, err error) {
	i := strings.LastIndex(username, "@sas.")
	if i < 0 {
		return "", "", fmt.Errorf("%w: PLAIN username is not {id}@sas.{hub}", errBadAddress)
	}
	who, hubName := username[:i], username[i+len("@sas."):]
	if hubName == "" || strings.HasPrefix(hubName, "root.") {
		return "", "", fmt.Errorf("%w: PLAIN username names no device", errBadAddress)
	}
	deviceID, moduleID := who, ""
	if d, m, ok := strings.Cut(who, "/modules/"); ok {
		deviceID, moduleID = d, m
		if err := idcheck.ID(moduleID); err != nil {
			return "", "", fmt.Errorf("%w: %w", errBadAddress, err)
		}
	}
	if err := idcheck.ID(deviceID); err != nil {
		return "", "", fmt.Errorf("%w: %w", errBadAddress, err)
	}
	return identityName(deviceID, moduleID), hubName, nil
}
