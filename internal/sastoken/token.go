package sastoken

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Token errors, testable with errors.Is. Package sas exports the first
// two under the same names: they are the errors its users see.
var (
	// ErrMalformedToken reports a token that is not of the form
	// "SharedAccessSignature sr=…&sig=…&se=…[&skn=…]".
	ErrMalformedToken = errors.New("sas: malformed token")
	// ErrTokenExpired reports a token whose expiry has passed.
	ErrTokenExpired = errors.New("sas: token expired")
	// ErrBadSignature reports a token whose signature does not match the key.
	ErrBadSignature = errors.New("sas: signature does not match")
)

// MaxClockSkew is how long after its expiry a token is still accepted by
// Verify, as the hub's own token parser allows for clocks that disagree.
const MaxClockSkew = 5 * time.Minute

const tokenPrefix = "SharedAccessSignature"

// maxExpiry is the last second of the year 9999. A larger se would overflow
// time.Time's arithmetic, turning a far-future expiry into a past one.
const maxExpiry = 253402300799

// Sign returns a SAS token granting access to resource until expiry:
//
//	SharedAccessSignature sr=<enc resource>&sig=<enc signature>&se=<unix>[&skn=<enc keyName>]
//
// key is the decoded shared access key; keyName is the policy name, empty
// for a device or module key. The signature is the base64 HMAC-SHA256 of
// "<enc resource>\n<unix expiry>".
func Sign(key []byte, resource, keyName string, expiry time.Time) string {
	sr := url.QueryEscape(resource)
	se := strconv.FormatInt(expiry.Unix(), 10)
	var b strings.Builder
	b.Grow(len(tokenPrefix) + len(sr) + len(se) + 80)
	b.WriteString(tokenPrefix)
	b.WriteString(" sr=")
	b.WriteString(sr)
	b.WriteString("&sig=")
	b.WriteString(url.QueryEscape(signature(key, sr, se)))
	b.WriteString("&se=")
	b.WriteString(se)
	if keyName != "" {
		b.WriteString("&skn=")
		b.WriteString(url.QueryEscape(keyName))
	}
	return b.String()
}

func signature(key []byte, encodedResource, expiry string) string {
	return base64.StdEncoding.EncodeToString(mac(key, encodedResource, expiry))
}

func mac(key []byte, encodedResource, expiry string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(encodedResource))
	h.Write([]byte{'\n'})
	h.Write([]byte(expiry))
	return h.Sum(nil)
}

// Token is a parsed SAS token. Parse it with Parse, check it with Verify
// and Covers.
type Token struct {
	// EncodedResource is the sr field exactly as the token carries it; the
	// signature is computed over it.
	EncodedResource string
	// Resource is sr decoded.
	Resource string
	// KeyName is the skn field decoded: the policy whose key signed the
	// token, or empty for a device or module key.
	KeyName string
	// Expiry is the se field.
	Expiry time.Time

	expiry    string // se as signed
	signature []byte // sig decoded from URL encoding and base64
}

// String returns the token's claims without its signature.
func (t Token) String() string {
	s := "sr=" + t.EncodedResource + " se=" + t.expiry
	if t.KeyName != "" {
		s += " skn=" + t.KeyName
	}
	return s
}

// GoString is String: %#v would otherwise print the signature.
func (t Token) GoString() string { return "sastoken.Token{" + t.String() + "}" }

// Parse parses a SAS token. Fields may come in any order and their
// names are matched case-insensitively; sr, sig and se are required, skn is
// optional, and other fields are ignored. The error never echoes the token.
func Parse(s string) (*Token, error) {
	scheme, fields, ok := strings.Cut(strings.TrimSpace(s), " ")
	if !ok || scheme != tokenPrefix {
		return nil, fmt.Errorf("%w: does not start with %q", ErrMalformedToken, tokenPrefix+" ")
	}
	var t Token
	var sig, se string
	seen := map[string]bool{}
	for _, field := range strings.Split(strings.TrimSpace(fields), "&") {
		name, value, ok := strings.Cut(field, "=")
		if !ok {
			return nil, fmt.Errorf("%w: field without '='", ErrMalformedToken)
		}
		name = strings.ToLower(name)
		switch name {
		case "sr", "sig", "se", "skn":
		default:
			continue
		}
		if seen[name] {
			return nil, fmt.Errorf("%w: duplicate field %q", ErrMalformedToken, name)
		}
		seen[name] = true
		if value == "" {
			return nil, fmt.Errorf("%w: empty field %q", ErrMalformedToken, name)
		}
		switch name {
		case "sr":
			t.EncodedResource = value
		case "sig":
			sig = value
		case "se":
			se = value
		case "skn":
			t.KeyName = value
		}
	}
	for _, name := range []string{"sr", "sig", "se"} {
		if !seen[name] {
			return nil, fmt.Errorf("%w: missing field %q", ErrMalformedToken, name)
		}
	}
	var err error
	// sr may be raw (the C SDK signs it unencoded) or encoded with '+' for
	// a space; QueryUnescape handles both.
	if t.Resource, err = url.QueryUnescape(t.EncodedResource); err != nil {
		return nil, fmt.Errorf("%w: sr is not URL-encoded correctly", ErrMalformedToken)
	}
	if t.KeyName, err = url.QueryUnescape(t.KeyName); err != nil {
		return nil, fmt.Errorf("%w: skn is not URL-encoded correctly", ErrMalformedToken)
	}
	if t.expiry, err = url.QueryUnescape(se); err != nil {
		return nil, fmt.Errorf("%w: se is not URL-encoded correctly", ErrMalformedToken)
	}
	unix, err := strconv.ParseInt(t.expiry, 10, 64)
	if err != nil || unix < 0 || unix > maxExpiry {
		return nil, fmt.Errorf("%w: se is not a number of seconds before the year 10000", ErrMalformedToken)
	}
	t.Expiry = time.Unix(unix, 0)
	// PathUnescape keeps a literal '+', which is part of the base64
	// alphabet, where QueryUnescape would turn it into a space.
	b64, err := url.PathUnescape(sig)
	if err != nil {
		return nil, fmt.Errorf("%w: sig is not URL-encoded correctly", ErrMalformedToken)
	}
	if t.signature, err = base64.StdEncoding.DecodeString(b64); err != nil || len(t.signature) != sha256.Size {
		return nil, fmt.Errorf("%w: sig is not a base64 HMAC-SHA256", ErrMalformedToken)
	}
	return &t, nil
}

// Verify checks the token's signature against key (the decoded shared
// access key) in constant time, and that it has not expired at now, with
// MaxClockSkew of grace.
func (t *Token) Verify(key []byte, now time.Time) error {
	if !hmac.Equal(mac(key, t.EncodedResource, t.expiry), t.signature) {
		return ErrBadSignature
	}
	if now.After(t.Expiry.Add(MaxClockSkew)) {
		return fmt.Errorf("%w at %s", ErrTokenExpired, t.Expiry.UTC().Format(time.RFC3339))
	}
	return nil
}
