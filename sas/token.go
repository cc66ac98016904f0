package sas

import (
	"errors"
	"time"

	"github.com/directmethods/iotdevice/internal/sastoken"
)

// Token errors, testable with errors.Is.
var (
	// ErrMalformedToken reports a token that is not of the form
	// "SharedAccessSignature sr=…&sig=…&se=…[&skn=…]".
	ErrMalformedToken = sastoken.ErrMalformedToken
	// ErrTokenExpired reports a token whose expiry has passed.
	ErrTokenExpired = sastoken.ErrTokenExpired
	// ErrWrongResource reports a token that does not cover the resource it
	// is presented for.
	ErrWrongResource = errors.New("sas: token does not cover the resource")
)

// Sign returns a SAS token granting access to resource until expiry:
//
//	SharedAccessSignature sr=<enc resource>&sig=<enc signature>&se=<unix>[&skn=<enc keyName>]
//
// key is the decoded shared access key (see DecodeKey); keyName is the
// policy name, empty for a device or module key. The signature is the
// base64 HMAC-SHA256 of "<enc resource>\n<unix expiry>".
func Sign(key []byte, resource, keyName string, expiry time.Time) string {
	return sastoken.Sign(key, resource, keyName, expiry)
}

// Token holds the claims of a SAS token: what it grants access to, the
// policy that signed it and when it expires. It holds no secret.
type Token struct {
	// Resource is the resource URI (sr) the token grants access to,
	// decoded.
	Resource string
	// KeyName is the policy (skn) whose key signed the token, or empty
	// for a device or module key.
	KeyName string
	// Expiry is when the token expires (se).
	Expiry time.Time
}

// ParseToken reads the claims of a SAS token, for instance to learn the
// expiry that a TokenFunc must return with a token obtained elsewhere.
// Fields may come in any order and their names are matched
// case-insensitively; sr, sig and se are required, skn is optional, and
// other fields are ignored. The signature is checked for form only:
// verifying it is the hub's part. Errors wrap ErrMalformedToken and never
// echo the token.
func ParseToken(s string) (*Token, error) {
	t, err := sastoken.Parse(s)
	if err != nil {
		return nil, err
	}
	return &Token{Resource: t.Resource, KeyName: t.KeyName, Expiry: t.Expiry}, nil
}
