package amqp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"time"
)

// ConnOptions configures a served connection. The zero value (or nil) is
// usable; each field states its default.
type ConnOptions struct {
	// ContainerID is sent in our open frame. Default: random.
	ContainerID string
	// MaxFrameSize is the largest frame the peer may send us; larger
	// frames close the connection. Default 65536; at least 512.
	MaxFrameSize uint32
	// MaxMessageSize is the largest message the peer may send on a link,
	// advertised in our attach and enforced when transfers are
	// reassembled. Default 1 MiB.
	MaxMessageSize uint64
	// IdleTimeout is advertised in our open frame. A peer that sends
	// nothing for twice this long is closed with
	// amqp:resource-limit-exceeded (the specification advises
	// advertising half the real threshold). Default 2 minutes; negative
	// disables it.
	IdleTimeout time.Duration
	// HandshakeTimeout bounds the protocol header, SASL and open
	// exchange. Default 30 seconds.
	HandshakeTimeout time.Duration
	// WriteTimeout bounds each write to the peer. Default 30 seconds.
	WriteTimeout time.Duration
	// LinkCredit is the credit granted to each link the peer sends on,
	// replenished as messages are received. Default 100.
	LinkCredit uint32
	// SASLPlain checks SASL PLAIN credentials; a non-nil error fails
	// authentication. It runs on the goroutine calling Serve, before the
	// connection opens. Default: nil, which accepts any credentials.
	SASLPlain func(ctx context.Context, username, password string) error
	// Logger receives connection events. Default: silent.
	Logger *slog.Logger
}

// Defaults of ConnOptions.
const (
	DefaultMaxFrameSize     = 65536
	DefaultMaxMessageSize   = 1 << 20
	DefaultIdleTimeout      = 2 * time.Minute
	DefaultHandshakeTimeout = 30 * time.Second
	DefaultWriteTimeout     = 30 * time.Second
	DefaultLinkCredit       = 100
)

// withDefaults returns a copy of o with every unset field defaulted.
func (o *ConnOptions) withDefaults() ConnOptions {
	var c ConnOptions
	if o != nil {
		c = *o
	}
	if c.ContainerID == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		c.ContainerID = hex.EncodeToString(b[:])
	}
	if c.MaxFrameSize == 0 {
		c.MaxFrameSize = DefaultMaxFrameSize
	}
	c.MaxFrameSize = max(c.MaxFrameSize, MinMaxFrameSize)
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	switch {
	case c.IdleTimeout == 0:
		c.IdleTimeout = DefaultIdleTimeout
	case c.IdleTimeout < 0:
		c.IdleTimeout = 0
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.LinkCredit == 0 {
		c.LinkCredit = DefaultLinkCredit
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
