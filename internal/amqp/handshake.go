package amqp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
)

// ErrAuth is wrapped by the error Serve returns when SASL authentication
// fails.
var ErrAuth = errors.New("amqp: authentication failed")

// handshake runs everything before the mux starts: protocol headers, SASL
// and the open exchange, within the deadline Serve set on the connection.
// It returns the frame reader to go on with.
func (c *Conn) handshake(ctx context.Context) (*FrameReader, error) {
	fr := NewFrameReader(c.nc, c.opts.MaxFrameSize)
	id, err := c.readHeader()
	if err != nil {
		return nil, err
	}
	switch id {
	case ProtocolSASL:
		if err := c.writeHeader(ProtocolSASL); err != nil {
			return nil, err
		}
		if err := c.saslExchange(ctx, fr); err != nil {
			return nil, err
		}
		if id, err = c.readHeader(); err != nil {
			return nil, err
		}
		if id != ProtocolAMQP {
			_ = c.writeHeader(ProtocolAMQP)
			return nil, fmt.Errorf("%w: protocol id %d after SASL", ErrFraming, id)
		}
		if err := c.writeHeader(ProtocolAMQP); err != nil {
			return nil, err
		}
	case ProtocolAMQP:
		if err := c.writeHeader(ProtocolAMQP); err != nil {
			return nil, err
		}
	default:
		// TLS is done by the listener, never inside AMQP: answer with the
		// header we do support and hang up (section 2.2).
		_ = c.writeHeader(ProtocolSASL)
		return nil, fmt.Errorf("%w: protocol id %d refused", ErrFraming, id)
	}
	return fr, c.openExchange(fr)
}

func (c *Conn) readHeader() (ProtocolID, error) {
	var h [8]byte
	if _, err := io.ReadFull(c.nc, h[:]); err != nil {
		return 0, &ConnError{IOErr: err}
	}
	id, err := ParseProtocolHeader(h)
	if err != nil {
		_ = c.writeHeader(ProtocolAMQP)
		return 0, err
	}
	return id, nil
}

func (c *Conn) writeHeader(id ProtocolID) error {
	h := ProtocolHeader(id)
	if _, err := c.nc.Write(h[:]); err != nil {
		return &ConnError{IOErr: err}
	}
	return nil
}

func (c *Conn) writeHandshakeFrame(f Frame) error {
	buf, err := AppendFrame(nil, f)
	if err != nil {
		return err
	}
	if _, err := c.nc.Write(buf); err != nil {
		return &ConnError{IOErr: err}
	}
	return nil
}

// saslExchange offers ANONYMOUS, MSSBCBS and PLAIN and checks the
// peer's choice (section 5.3).
func (c *Conn) saslExchange(ctx context.Context, fr *FrameReader) error {
	offer := &SASLMechanisms{Mechanisms: []Symbol{SASLAnonymous, SASLMSSBCBS, SASLPlain}}
	if err := c.writeHandshakeFrame(Frame{Type: FrameTypeSASL, Body: offer}); err != nil {
		return err
	}
	f, err := fr.ReadFrame()
	if err != nil {
		return handshakeReadError(err)
	}
	init, ok := f.Body.(*SASLInit)
	if !ok || f.Type != FrameTypeSASL {
		return fmt.Errorf("%w: want sasl-init, got %T", ErrFraming, f.Body)
	}
	authErr := c.authenticate(ctx, init)
	outcome := &SASLOutcome{Code: SASLCodeOK}
	if authErr != nil {
		outcome.Code = SASLCodeAuth
	}
	if err := c.writeHandshakeFrame(Frame{Type: FrameTypeSASL, Body: outcome}); err != nil {
		return err
	}
	if authErr != nil {
		return fmt.Errorf("%w: %w", ErrAuth, authErr)
	}
	c.saslMechanism = init.Mechanism
	return nil
}

func (c *Conn) authenticate(ctx context.Context, init *SASLInit) error {
	switch init.Mechanism {
	case SASLAnonymous, SASLMSSBCBS:
		return nil
	case SASLPlain:
		// The response is authzid NUL authcid NUL passwd (RFC 4616).
		parts := bytes.Split(init.InitialResponse, []byte{0})
		if len(parts) != 3 {
			return errors.New("malformed PLAIN response")
		}
		c.saslUsername = string(parts[1])
		if c.opts.SASLPlain == nil {
			return nil
		}
		return c.opts.SASLPlain(ctx, string(parts[1]), string(parts[2]))
	}
	return fmt.Errorf("mechanism %q not offered", init.Mechanism)
}

// openExchange reads the peer's open and answers with ours. A first frame
// that is not an open is answered with open and close (section 2.4.1).
func (c *Conn) openExchange(fr *FrameReader) error {
	f, err := fr.ReadFrame()
	if err != nil {
		if errors.Is(err, ErrFraming) || errors.Is(err, ErrDecode) {
			return c.refuseOpen(&Error{Condition: conditionFor(err), Description: err.Error()})
		}
		return &ConnError{IOErr: err}
	}
	open, ok := f.Body.(*Open)
	if !ok || f.Type != FrameTypeAMQP || f.Channel != 0 {
		return c.refuseOpen(&Error{Condition: ErrCondFramingError, Description: "first frame is not open"})
	}
	c.remoteOpen = open
	c.peerMaxFrame = max(open.MaxFrameSize, MinMaxFrameSize)
	c.peerIdle = open.IdleTimeout
	return c.writeHandshakeFrame(Frame{Type: FrameTypeAMQP, Body: c.localOpen()})
}

func (c *Conn) localOpen() *Open {
	return &Open{
		ContainerID:  c.opts.ContainerID,
		MaxFrameSize: c.opts.MaxFrameSize,
		ChannelMax:   maxChannel,
		IdleTimeout:  c.opts.IdleTimeout,
	}
}

func (c *Conn) refuseOpen(e *Error) error {
	_ = c.writeHandshakeFrame(Frame{Type: FrameTypeAMQP, Body: c.localOpen()})
	_ = c.writeHandshakeFrame(Frame{Type: FrameTypeAMQP, Body: &Close{Error: e}})
	return &ConnError{Err: e}
}

func conditionFor(err error) Symbol {
	if errors.Is(err, ErrDecode) {
		return ErrCondDecodeError
	}
	return ErrCondFramingError
}

func handshakeReadError(err error) error {
	if errors.Is(err, ErrFraming) || errors.Is(err, ErrDecode) {
		return err
	}
	return &ConnError{IOErr: err}
}
