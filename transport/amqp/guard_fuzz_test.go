package amqp

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"sync"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	iamqp "github.com/directmethods/iotdevice/internal/amqp"
)

// Modes of FuzzGuardedConn: how the fuzzed bytes reach the client.
const (
	fuzzFrameBody = iota // the body of one AMQP frame on channel 0
	fuzzMessage          // the payload of a message on the client's receiver link
	fuzzRaw              // raw bytes in the stream
	fuzzOpen             // raw bytes instead of the peer's open
	fuzzModes
)

// FuzzGuardedConn runs a real go-amqp connection behind the frame guard.
// A scripted peer opens it, begins a session and attaches a link each way
// (the client receives and accepts messages on one, and has sent one
// unsettled on the other), then sends the fuzzed bytes and an echo flow;
// or it sends the fuzzed bytes in place of its open.
// The process must survive (go-amqp's panics happen on its own goroutines
// and end it) and go-amqp must go on answering: the echo flow gets its
// answer, or the connection ends. Raw bytes are followed by zeros, which
// end the connection once the echo flow is sent.
func FuzzGuardedConn(f *testing.F) {
	for _, seed := range guardFuzzSeeds(f) {
		f.Add(seed.mode, seed.data)
	}
	f.Fuzz(func(t *testing.T, mode byte, data []byte) {
		runGuardedConn(t, mode%fuzzModes, data)
	})
}

type guardFuzzSeed struct {
	mode byte
	data []byte
}

// guardFuzzSeeds are inputs that crash or hang go-amqp v1.7.0 without the
// guard, and a few harmless ones.
func guardFuzzSeeds(tb testing.TB) []guardFuzzSeed {
	body := func(b iamqp.Body) []byte {
		enc, err := iamqp.AppendBody(nil, b)
		if err != nil {
			tb.Fatal(err)
		}
		if tr, ok := b.(*iamqp.Transfer); ok {
			enc = append(enc, tr.Payload...)
		}
		return enc
	}
	message := func(edit func(m *iamqp.Message)) []byte {
		m := request(iamqp.UUID{1}, "m", []byte("{}"))
		edit(m)
		b, err := iamqp.MarshalMessage(m)
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	zero, one, last := uint32(0), uint32(1), uint32(math.MaxUint32)
	return []guardFuzzSeed{
		// Crashers: Annotations.Unmarshal hashes a list, binary or map key
		// (Azure/go-amqp#369).
		{fuzzMessage, message(func(m *iamqp.Message) { m.MessageAnnotations = iamqp.Map{{Key: []any{"k"}, Value: 1}} })},
		{fuzzMessage, message(func(m *iamqp.Message) { m.DeliveryAnnotations = iamqp.Map{{Key: []byte{1}, Value: 1}} })},
		{fuzzMessage, message(func(m *iamqp.Message) {
			m.Footer = iamqp.Map{{Key: iamqp.Map{{Key: iamqp.Symbol("a"), Value: 1}}, Value: 1}}
		})},
		// Crasher: a described key holding a list, in a map inside an
		// application property (mapAnyAny checks only the key's kind).
		{fuzzMessage, message(func(m *iamqp.Message) {
			m.ApplicationProperties["p"] = iamqp.Map{{Key: iamqp.Described{Descriptor: uint64(0x1234), Value: []any{1}}, Value: 1}}
		})},
		// Crasher: the same key in a flow's properties.
		{fuzzFrameBody, body(&iamqp.Flow{NextIncomingID: &zero, IncomingWindow: 10, OutgoingWindow: 10,
			Properties: iamqp.Map{{Key: iamqp.Symbol("p"), Value: iamqp.Map{{Key: iamqp.Described{Descriptor: uint64(1), Value: []byte{1}}, Value: 1}}}}})},
		// Crasher: a modified outcome's annotations with a list key.
		{fuzzFrameBody, body(&iamqp.Disposition{Role: iamqp.RoleReceiver, First: 0, Settled: true,
			State: &iamqp.Modified{MessageAnnotations: iamqp.Map{{Key: []any{1}, Value: 1}}}})},
		// Crasher: a flow for the sender link without link-credit (nil
		// pointer dereference in the sender's mux).
		{fuzzFrameBody, body(&iamqp.Flow{NextIncomingID: &zero, IncomingWindow: 10, OutgoingWindow: 10, Handle: &one})},
		// Hang: a disposition range reaching the largest delivery id.
		{fuzzFrameBody, body(&iamqp.Disposition{Role: iamqp.RoleReceiver, First: 0, Last: &last, Settled: true, State: &iamqp.Accepted{}})},
		// Hang: a transfer with the largest delivery id, which the
		// client's accept settles through the same loop.
		{fuzzFrameBody, body(&iamqp.Transfer{Handle: 0, DeliveryID: &last, DeliveryTag: []byte{1}, MessageFormat: &zero,
			Payload: message(func(*iamqp.Message) {})})},
		// Memory: a 2 GiB frame header.
		{fuzzRaw, frameHeader(1<<31-1, iamqp.FrameTypeAMQP)},
		// Before the open: a max-frame-size below 512 (go-amqp's sender
		// would slice with a negative length), an open above 512 bytes.
		{fuzzOpen, body(&iamqp.Open{ContainerID: "peer", MaxFrameSize: 100})},
		{fuzzOpen, body(&iamqp.Open{ContainerID: string(make([]byte, 600)), MaxFrameSize: maxFrameSize})},
		// Harmless.
		{fuzzMessage, message(func(m *iamqp.Message) { m.MessageAnnotations = iamqp.Map{{Key: iamqp.Symbol("x-opt"), Value: 1}} })},
		{fuzzFrameBody, body(&iamqp.Flow{NextIncomingID: &zero, IncomingWindow: 10, OutgoingWindow: 10, Handle: &one, LinkCredit: &one})},
		{fuzzRaw, nil},
	}
}

// fuzzPeer is the scripted peer of FuzzGuardedConn: it writes on nc and a
// reader goroutine drains what the client sends (net.Pipe has no buffer).
type fuzzPeer struct {
	nc     net.Conn
	frames chan iamqp.Frame // what the client sent; closed when it stops
}

func (p *fuzzPeer) write(b []byte) error {
	_, err := p.nc.Write(b)
	return err
}

func (p *fuzzPeer) send(t *testing.T, body iamqp.Body) error {
	return p.write(encodeFrame(t, iamqp.Frame{Type: iamqp.FrameTypeAMQP, Body: body}))
}

// until returns the first frame the client sent for which want is true,
// io.EOF if the client hung up first, or an error after waitTimeout.
func (p *fuzzPeer) until(want func(iamqp.Body) bool) (iamqp.Body, error) {
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		select {
		case f, ok := <-p.frames:
			if !ok {
				return nil, io.EOF
			}
			if want(f.Body) {
				return f.Body, nil
			}
		case <-timer.C:
			return nil, errors.New("timed out waiting for the client")
		}
	}
}

// fuzzNext returns the client's next frame of type T, skipping others.
func fuzzNext[T iamqp.Body](p *fuzzPeer) (T, error) {
	b, err := p.until(func(b iamqp.Body) bool { _, ok := b.(T); return ok })
	t, _ := b.(T)
	return t, err
}

// runGuardedConn runs one FuzzGuardedConn input.
func runGuardedConn(t *testing.T, mode byte, data []byte) {
	clientEnd, peerEnd := net.Pipe()
	defer clientEnd.Close()
	defer peerEnd.Close()
	p := &fuzzPeer{nc: peerEnd, frames: make(chan iamqp.Frame, 64)}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer peerEnd.Close() // ends the reader before wg.Wait
	wg.Go(func() {        // owned by the test; ends when peerEnd is closed or the client hangs up; joined above
		defer close(p.frames)
		var header [8]byte
		if _, err := io.ReadFull(peerEnd, header[:]); err != nil {
			return
		}
		fr := iamqp.NewFrameReader(peerEnd, 1<<20)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				// A frame the script cannot decode: go on draining, so
				// that the client's writes never block.
				_, _ = io.Copy(io.Discard, peerEnd)
				return
			}
			select {
			case p.frames <- f:
			default: // the script only waits for a few frames
			}
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()

	opened := make(chan error, 1)
	wg.Go(func() { // owned by the test; ends once the peer has answered the handshake (or failed); joined above
		if err := p.write(protocolHeader(iamqp.ProtocolAMQP)); err != nil {
			opened <- err
			return
		}
		if _, err := fuzzNext[*iamqp.Open](p); err != nil {
			opened <- err
			return
		}
		if mode == fuzzOpen {
			// Zeros complete any frame the input left unfinished, which
			// the guard refuses, so NewConn returns.
			_ = p.write(append(append([]byte{}, data...), make([]byte, minMaxFrameSize)...))
			opened <- nil
			return
		}
		opened <- p.send(t, &iamqp.Open{ContainerID: "peer", MaxFrameSize: maxFrameSize})
	})
	client, err := goamqp.NewConn(ctx, newFrameGuard(clientEnd, guardHooks{}), &goamqp.ConnOptions{ContainerID: "client", MaxFrameSize: maxFrameSize, IdleTimeout: -1})
	if mode == fuzzOpen {
		if err == nil {
			client.Close()
		} else if ctx.Err() != nil {
			t.Fatalf("NewConn hung on the peer's open: %v", err)
		}
		peerEnd.Close() // the peer's writes end
		<-opened
		return
	}
	if err := <-opened; err != nil {
		t.Fatalf("peer: open: %v", err)
	}
	if err != nil {
		t.Fatalf("NewConn: %v", err)
	}
	defer client.Close()

	// Session and links, the peer answering each step.
	zero, credit := uint32(0), uint32(10)
	step := func(what string, answer func() error) {
		t.Helper()
		done := make(chan error, 1)
		wg.Go(func() { done <- answer() }) // owned by the test; ends with the peer's answer; awaited here
		if err := <-done; err != nil {
			t.Fatalf("peer: %s: %v", what, err)
		}
	}
	var session *goamqp.Session
	sessionErr := make(chan error, 1)
	go func() { // owned by the test; ends when NewSession returns, awaited below
		var err error
		session, err = client.NewSession(ctx, nil)
		sessionErr <- err
	}()
	step("begin", func() error {
		if _, err := fuzzNext[*iamqp.Begin](p); err != nil {
			return err
		}
		remote := uint16(0)
		return p.send(t, &iamqp.Begin{RemoteChannel: &remote, IncomingWindow: 5000, OutgoingWindow: 5000, HandleMax: 10})
	})
	if err := <-sessionErr; err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	attach := func(role iamqp.Role) func() error {
		return func() error {
			a, err := fuzzNext[*iamqp.Attach](p)
			if err != nil {
				return err
			}
			answer := &iamqp.Attach{Name: a.Name, Handle: a.Handle, Role: role, Source: a.Source, Target: a.Target}
			if err := p.send(t, answer); err != nil {
				return err
			}
			if role == iamqp.RoleReceiver { // give the client's sender credit
				h := a.Handle
				return p.send(t, &iamqp.Flow{NextIncomingID: &zero, IncomingWindow: 5000, OutgoingWindow: 5000, Handle: &h, DeliveryCount: &zero, LinkCredit: &credit})
			}
			return nil
		}
	}
	type linkResult[L any] struct {
		l   L
		err error
	}
	receivers := make(chan linkResult[*goamqp.Receiver], 1)
	go func() { // owned by the test; ends when NewReceiver returns, awaited below
		r, err := session.NewReceiver(ctx, "/in", &goamqp.ReceiverOptions{Credit: 10, MaxMessageSize: maxMessageSize})
		receivers <- linkResult[*goamqp.Receiver]{r, err}
	}()
	step("receiver attach", attach(iamqp.RoleSender))
	rcv := <-receivers
	if rcv.err != nil {
		t.Fatalf("NewReceiver: %v", rcv.err)
	}
	senders := make(chan linkResult[*goamqp.Sender], 1)
	go func() { // owned by the test; ends when NewSender returns, awaited below
		s, err := session.NewSender(ctx, "/out", nil)
		senders <- linkResult[*goamqp.Sender]{s, err}
	}()
	step("sender attach", attach(iamqp.RoleReceiver))
	snd := <-senders
	if snd.err != nil {
		t.Fatalf("NewSender: %v", snd.err)
	}
	if _, err := snd.l.SendWithReceipt(ctx, &goamqp.Message{Data: [][]byte{[]byte("unsettled")}}, nil); err != nil {
		t.Fatalf("SendWithReceipt: %v", err)
	}

	// The client accepts every message, as the adapter does.
	wg.Go(func() { // owned by the test; ends when the connection ends (client.Close below); joined above
		for {
			msg, err := rcv.l.Receive(context.Background(), nil)
			if err != nil {
				return
			}
			if err := rcv.l.AcceptMessage(context.Background(), msg); err != nil {
				return
			}
		}
	})

	// The fuzzed input, then an echo flow that go-amqp's session answers.
	switch mode {
	case fuzzFrameBody:
		_ = p.write(append(frameHeader(uint32(8+len(data)), iamqp.FrameTypeAMQP), data...))
	case fuzzMessage:
		id := uint32(1)
		for _, part := range split(&iamqp.Transfer{Handle: 0, DeliveryID: &id, DeliveryTag: []byte{1}, MessageFormat: &zero, Payload: data}, maxFrameSize/2) {
			if p.send(t, part) != nil {
				break
			}
		}
	case fuzzRaw:
		_ = p.write(data)
	}
	next := uint32(0)
	_ = p.send(t, &iamqp.Flow{NextIncomingID: &next, IncomingWindow: 5000, NextOutgoingID: 0, OutgoingWindow: 5000, Echo: true})
	if mode == fuzzRaw {
		// Raw bytes may leave a frame unfinished, which then takes the
		// echo flow in: zeros complete any frame, and the guard refuses
		// them, so the connection ends.
		_ = p.write(make([]byte, maxFrameSize))
	}
	// The session's answer to the echo, or the end of the session or
	// connection, shows that go-amqp goes on; a hang times out.
	_, err = p.until(func(b iamqp.Body) bool {
		switch b := b.(type) {
		case *iamqp.Flow:
			return b.Handle == nil
		case *iamqp.End, *iamqp.Close:
			return true
		}
		return false
	})
	if err != nil && !errors.Is(err, io.EOF) { // EOF: the client hung up, refusing the input or giving up
		t.Fatalf("go-amqp neither answered the echo flow nor ended the connection: %v", err)
	}
}
