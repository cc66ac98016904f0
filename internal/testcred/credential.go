// Package testcred holds a credential for tests that counts the tokens it
// signs.
package testcred

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/directmethods/iotdevice/sas"
)

// CountingCredential is a credential that counts the tokens it signs, for
// tests of what a Dialer or a client asks of its credential.
type CountingCredential struct {
	sas.Credential
	tokens atomic.Int64
}

// Token signs with the wrapped credential and counts the call.
func (c *CountingCredential) Token(ctx context.Context, resource string) (string, time.Time, error) {
	c.tokens.Add(1)
	return c.Credential.Token(ctx, resource)
}

// Tokens returns how many tokens Token was asked for.
func (c *CountingCredential) Tokens() int64 { return c.tokens.Load() }
