package sas

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/directmethods/iotdevice/internal/idcheck"
)

// ErrInvalidConnectionString is wrapped by every error of
// ParseConnectionString.
var ErrInvalidConnectionString = errors.New("sas: invalid connection string")

// ConnectionString is a parsed device or module connection string, as the
// Azure portal and the local hub print them:
//
//	HostName=myhub.azure-devices.net;DeviceId=dev-01;SharedAccessKey=…
//
// Exactly one authentication scheme is set: SharedAccessKey (optionally
// with SharedAccessKeyName for a policy key), SharedAccessSignature, or X509.
type ConnectionString struct {
	HostName              string
	DeviceID              string
	ModuleID              string
	SharedAccessKey       string // base64, as written in the string
	SharedAccessKeyName   string
	SharedAccessSignature string
	GatewayHostName       string
	X509                  bool
}

var connectionStringKeys = []string{
	"HostName", "DeviceId", "ModuleId", "SharedAccessKey", "SharedAccessKeyName",
	"SharedAccessSignature", "GatewayHostName", "x509",
}

// ParseConnectionString parses and validates a connection string. Pairs are
// separated by ';' and split on their first '=', so base64 padding
// survives; spaces around keys and values are dropped; keys are
// case-sensitive. Errors name the offending key but never echo a value.
func ParseConnectionString(s string) (*ConnectionString, error) {
	if trimmed := strings.TrimSpace(s); strings.HasPrefix(trimmed, `"`) || strings.HasPrefix(trimmed, "'") ||
		strings.HasSuffix(trimmed, `"`) || strings.HasSuffix(trimmed, "'") {
		return nil, fmt.Errorf("%w: it is wrapped in quotes; pass it without them", ErrInvalidConnectionString)
	}
	values := map[string]string{}
	for i, pair := range strings.Split(strings.TrimSpace(s), ";") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		key, value, ok := strings.Cut(pair, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok {
			return nil, fmt.Errorf("%w: pair %d has no '='", ErrInvalidConnectionString, i+1)
		}
		if !known(key) {
			return nil, fmt.Errorf("%w: unknown key %q", ErrInvalidConnectionString, clip(key))
		}
		if _, dup := values[key]; dup {
			return nil, fmt.Errorf("%w: duplicate key %s", ErrInvalidConnectionString, key)
		}
		if value == "" {
			return nil, fmt.Errorf("%w: empty value for %s", ErrInvalidConnectionString, key)
		}
		values[key] = value
	}
	cs := &ConnectionString{
		HostName:              values["HostName"],
		DeviceID:              values["DeviceId"],
		ModuleID:              values["ModuleId"],
		SharedAccessKey:       values["SharedAccessKey"],
		SharedAccessKeyName:   values["SharedAccessKeyName"],
		SharedAccessSignature: values["SharedAccessSignature"],
		GatewayHostName:       values["GatewayHostName"],
	}
	if x, ok := values["x509"]; ok {
		if !strings.EqualFold(x, "true") {
			return nil, fmt.Errorf("%w: x509 must be \"true\"", ErrInvalidConnectionString)
		}
		cs.X509 = true
	}
	if err := cs.validate(); err != nil {
		return nil, err
	}
	return cs, nil
}

func (cs *ConnectionString) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConnectionString}, a...)...)
	}
	switch {
	case cs.HostName == "":
		return bad("missing HostName")
	case cs.DeviceID == "":
		return bad("missing DeviceId")
	}
	if err := idcheck.HostName(cs.HostName); err != nil {
		return bad("HostName: %w", err)
	}
	if err := idcheck.ID(cs.DeviceID); err != nil {
		return bad("DeviceId: %w", err)
	}
	if cs.ModuleID != "" {
		if err := idcheck.ID(cs.ModuleID); err != nil {
			return bad("ModuleId: %w", err)
		}
	}
	if cs.GatewayHostName != "" {
		if err := idcheck.HostName(cs.GatewayHostName); err != nil {
			return bad("GatewayHostName: %w", err)
		}
	}
	schemes := 0
	for _, set := range []bool{cs.SharedAccessKey != "", cs.SharedAccessSignature != "", cs.X509} {
		if set {
			schemes++
		}
	}
	// The key name is checked first so that a string holding only a key
	// name is told what it lacks.
	switch {
	case cs.SharedAccessKeyName != "" && cs.SharedAccessKey == "":
		return bad("SharedAccessKeyName needs SharedAccessKey")
	case schemes == 0:
		return bad("no authentication: want one of SharedAccessKey, SharedAccessSignature or x509=true")
	case schemes > 1:
		return bad("more than one authentication scheme: use only one of SharedAccessKey, SharedAccessSignature or x509=true")
	}
	if cs.SharedAccessKey != "" {
		if _, err := DecodeKey(cs.SharedAccessKey); err != nil {
			return bad("SharedAccessKey: %w", err)
		}
	}
	if cs.SharedAccessSignature != "" {
		if _, err := ParseToken(cs.SharedAccessSignature); err != nil {
			return bad("SharedAccessSignature: %w", err)
		}
	}
	return nil
}

// ErrInvalidKey reports a shared access key that is not standard base64.
var ErrInvalidKey = errors.New("sas: key is not valid base64")

// DecodeKey decodes a base64 shared access key, as the portal shows it.
func DecodeKey(key string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(b) == 0 {
		return nil, ErrInvalidKey
	}
	return b, nil
}

// Credential returns the credential the connection string describes: a
// KeyCredential for SharedAccessKey (tokens live for lifetime, or
// DefaultTokenLifetime when it is zero), a TokenCredential for
// SharedAccessSignature. For x509=true it returns ErrNeedCertificate: the
// certificate is never part of a connection string.
func (cs *ConnectionString) Credential(lifetime time.Duration) (Credential, error) {
	switch {
	case cs.SharedAccessKey != "":
		return NewKeyCredential(cs.SharedAccessKey, cs.SharedAccessKeyName, lifetime)
	case cs.SharedAccessSignature != "":
		return NewTokenCredential(cs.SharedAccessSignature)
	default:
		return nil, ErrNeedCertificate
	}
}

// String returns the connection string with the key and signature
// replaced by "REDACTED", safe to print.
func (cs ConnectionString) String() string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("HostName", cs.HostName)
	add("DeviceId", cs.DeviceID)
	add("ModuleId", cs.ModuleID)
	add("SharedAccessKeyName", cs.SharedAccessKeyName)
	add("SharedAccessKey", redact(cs.SharedAccessKey))
	add("SharedAccessSignature", redact(cs.SharedAccessSignature))
	add("GatewayHostName", cs.GatewayHostName)
	if cs.X509 {
		add("x509", "true")
	}
	return strings.Join(parts, ";")
}

// LogValue implements slog.LogValuer with the secrets redacted.
func (cs ConnectionString) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("host", cs.HostName), slog.String("device_id", cs.DeviceID)}
	if cs.ModuleID != "" {
		attrs = append(attrs, slog.String("module_id", cs.ModuleID))
	}
	if cs.GatewayHostName != "" {
		attrs = append(attrs, slog.String("gateway", cs.GatewayHostName))
	}
	auth := "x509"
	switch {
	case cs.SharedAccessKey != "":
		auth = "key"
	case cs.SharedAccessSignature != "":
		auth = "token"
	}
	return slog.GroupValue(append(attrs, slog.String("auth", auth))...)
}

// The Go formatter would otherwise print the struct's fields: %v, %+v
// and %#v all go through String.
func (cs ConnectionString) GoString() string { return cs.String() }

func redact(s string) string {
	if s == "" {
		return ""
	}
	return "REDACTED"
}

func known(key string) bool {
	for _, k := range connectionStringKeys {
		if k == key {
			return true
		}
	}
	return false
}

// clip returns a key for an error message only when it looks like a key
// name: a secret pasted where a key belongs must not reach a log.
func clip(s string) string {
	if len(s) > 24 {
		return "(not shown)"
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && s[i] != '_' && s[i] != '-' {
			return "(not shown)"
		}
	}
	return s
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
