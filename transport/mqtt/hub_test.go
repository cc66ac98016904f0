package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/internal/testcert"
	"github.com/directmethods/iotdevice/internal/testwait"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// waitTimeout bounds every wait of the tests.
const waitTimeout = 10 * time.Second

// hubScript says how the fake hub answers.
type hubScript struct {
	connackCode  byte            // CONNACK return code; 0 accepts
	noConnack    bool            // read CONNECT and never answer
	subackCode   byte            // SUBACK return code; 0 grants QoS 0
	subackGate   <-chan struct{} // when set, SUBACK waits until it is closed
	requestCerts bool            // ask the client for a TLS certificate
	stall        <-chan struct{} // when set, stop reading after the SUBACK until it is closed
	noPingresp   bool            // never answer PINGREQ
	noPuback     bool            // never acknowledge the client's PUBLISH packets
	readRate     int             // when set, read at most this many bytes a second after the CONNACK, as a slow link does
	// onPacket, when set, sees every packet from the client after CONNECT
	// first; when it reports true, the hub does nothing more with it. It
	// runs on the session's reader.
	onPacket func(s *session, p packets.ControlPacket) (handled bool)
}

// fakeHub is a scripted IoT Hub MQTT endpoint built on paho's packets.
// Every accepted connection becomes a session the test receives from
// sessions.
type fakeHub struct {
	t        *testing.T
	script   hubScript
	sessions chan *session
	ln       net.Listener // TLS listener
	wg       sync.WaitGroup

	mu   sync.Mutex
	live map[*session]bool
}

// session is one client connection as the fake hub sees it.
type session struct {
	conn         net.Conn
	connect      *packets.ConnectPacket
	peerCerts    []*x509.Certificate
	subscribes   chan *packets.SubscribePacket
	unsubscribes chan *packets.UnsubscribePacket
	publishes    chan *packets.PublishPacket // PUBLISH packets from the client
	pubacks      chan uint16                 // packet ids of the client's PUBACKs
	pings        chan struct{}               // one per PINGREQ (dropped when full)
	subackSent   atomic.Bool
	disconnected atomic.Bool   // the client sent DISCONNECT
	done         chan struct{} // closed when the session's reader ends
	writeMu      sync.Mutex
}

// testPKI is a throwaway CA with a server certificate for 127.0.0.1.
type testPKI struct {
	roots      *x509.CertPool
	serverCert tls.Certificate
}

var pki = sync.OnceValue(func() *testPKI {
	cert, roots, err := testcert.Server()
	if err != nil {
		panic(err)
	}
	return &testPKI{roots: roots, serverCert: cert}
})

// selfSignedClientCert returns a client certificate as an X.509 device has.
func selfSignedClientCert(t *testing.T) tls.Certificate {
	t.Helper()
	cert, err := testcert.Client("device-1")
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func (h *fakeHub) serverTLS() *tls.Config {
	cfg := &tls.Config{Certificates: []tls.Certificate{pki().serverCert}, MinVersion: tls.VersionTLS12}
	if h.script.requestCerts {
		// The test only records the certificate; the hub's registry would
		// check its thumbprint.
		cfg.ClientAuth = tls.RequireAnyClientCert
	}
	return cfg
}

// startHub listens for MQTT over TLS on 127.0.0.1.
func startHub(t *testing.T, script hubScript) *fakeHub {
	t.Helper()
	h := &fakeHub{t: t, script: script, sessions: make(chan *session, 16), live: map[*session]bool{}}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", h.serverTLS())
	if err != nil {
		t.Fatal(err)
	}
	h.ln = ln
	h.wg.Go(func() { // owned by the hub; ends when Close closes the listener, joined in Close
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.wg.Go(func() { h.serve(c) }) // owned by the hub; ends when the connection closes, joined in Close
		}
	})
	t.Cleanup(h.Close)
	return h
}

// Close closes the listener and every session and waits for the hub's
// goroutines.
func (h *fakeHub) Close() {
	if h.ln != nil {
		h.ln.Close()
	}
	h.mu.Lock()
	for s := range h.live {
		s.conn.Close()
	}
	h.mu.Unlock()
	h.wg.Wait()
}

func (h *fakeHub) port() int { return h.ln.Addr().(*net.TCPAddr).Port }

// serve runs one connection: CONNECT, CONNACK, then SUBSCRIBE, PUBLISH,
// PINGREQ and DISCONNECT until the connection ends.
func (h *fakeHub) serve(c net.Conn) {
	defer c.Close()
	s := &session{conn: c, subscribes: make(chan *packets.SubscribePacket, 4), unsubscribes: make(chan *packets.UnsubscribePacket, 4),
		publishes: make(chan *packets.PublishPacket, 64), pubacks: make(chan uint16, 64), pings: make(chan struct{}, 4), done: make(chan struct{})}
	defer close(s.done)
	h.mu.Lock()
	h.live[s] = true
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.live, s)
		h.mu.Unlock()
	}()

	if tc, ok := c.(*tls.Conn); ok {
		if h.script.readRate > 0 {
			// A slow path has small buffers: keep the kernel from taking
			// megabytes the hub reads only slowly.
			_ = tc.NetConn().(*net.TCPConn).SetReadBuffer(16 << 10)
		}
		if err := tc.Handshake(); err != nil {
			return
		}
		s.peerCerts = tc.ConnectionState().PeerCertificates
	}
	p, err := packets.ReadPacket(c)
	if err != nil {
		return
	}
	connect, ok := p.(*packets.ConnectPacket)
	if !ok {
		return
	}
	s.connect = connect
	h.sessions <- s
	if h.script.noConnack {
		_, _ = io.Copy(io.Discard, c) // until the client gives up
		return
	}
	ack := packets.NewControlPacket(packets.Connack).(*packets.ConnackPacket)
	ack.ReturnCode = h.script.connackCode
	if err := s.write(ack); err != nil || ack.ReturnCode != packets.Accepted {
		return
	}
	var src io.Reader = c
	if h.script.readRate > 0 {
		src = &slowReader{r: c, rate: h.script.readRate}
	}
	for {
		p, err := packets.ReadPacket(src)
		if err != nil {
			return
		}
		if h.script.onPacket != nil && h.script.onPacket(s, p) {
			continue
		}
		switch p := p.(type) {
		case *packets.SubscribePacket:
			s.subscribes <- p
			if h.script.subackGate != nil {
				select {
				case <-h.script.subackGate:
				case <-time.After(waitTimeout):
					return
				}
			}
			sa := packets.NewControlPacket(packets.Suback).(*packets.SubackPacket)
			sa.MessageID = p.MessageID
			for range p.Topics {
				sa.ReturnCodes = append(sa.ReturnCodes, h.script.subackCode)
			}
			s.subackSent.Store(true)
			if s.write(sa) != nil {
				return
			}
			if h.script.stall != nil {
				<-h.script.stall // the connection stays open, unread
				return
			}
		case *packets.UnsubscribePacket:
			s.unsubscribes <- p
			ua := packets.NewControlPacket(packets.Unsuback).(*packets.UnsubackPacket)
			ua.MessageID = p.MessageID
			if s.write(ua) != nil {
				return
			}
		case *packets.PublishPacket:
			s.publishes <- p
			if p.Qos == 1 && !h.script.noPuback {
				pa := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
				pa.MessageID = p.MessageID
				if s.write(pa) != nil {
					return
				}
			}
		case *packets.PubackPacket:
			s.pubacks <- p.MessageID
		case *packets.PingreqPacket:
			select {
			case s.pings <- struct{}{}:
			default:
			}
			if h.script.noPingresp {
				continue
			}
			if s.write(packets.NewControlPacket(packets.Pingresp)) != nil {
				return
			}
		case *packets.DisconnectPacket:
			s.disconnected.Store(true)
			return
		}
	}
}

func (s *session) write(p packets.ControlPacket) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return p.Write(s.conn)
}

// writeRaw writes bytes that need not be a valid packet.
func (s *session) writeRaw(t *testing.T, b []byte) {
	t.Helper()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if _, err := s.conn.Write(b); err != nil {
		t.Fatalf("fake hub: write: %v", err)
	}
}

// request publishes a method request to the client at QoS 0.
func (s *session) request(t *testing.T, topic string, payload []byte) {
	t.Helper()
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.TopicName = topic
	p.Payload = payload
	if err := s.write(p); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatalf("fake hub: publish: %v", err)
	}
}

// publish sends the client a PUBLISH with the given QoS, packet id and DUP
// flag.
func (s *session) publish(t *testing.T, topic string, qos byte, id uint16, dup bool, payload []byte) {
	t.Helper()
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.TopicName, p.Qos, p.MessageID, p.Dup, p.Payload = topic, qos, id, dup, payload
	if err := s.write(p); err != nil {
		t.Fatalf("fake hub: publish: %v", err)
	}
}

// ack sends the client an acknowledgement of the given type for id.
func (s *session) ack(t *testing.T, kind byte, id uint16) {
	t.Helper()
	var p packets.ControlPacket
	switch kind {
	case packets.Puback:
		a := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
		a.MessageID = id
		p = a
	case packets.Suback:
		a := packets.NewControlPacket(packets.Suback).(*packets.SubackPacket)
		a.MessageID, a.ReturnCodes = id, []byte{0}
		p = a
	case packets.Unsuback:
		a := packets.NewControlPacket(packets.Unsuback).(*packets.UnsubackPacket)
		a.MessageID = id
		p = a
	}
	if err := s.write(p); err != nil {
		t.Fatalf("fake hub: %s: %v", packets.PacketNames[kind], err)
	}
}

// slowReader reads at most rate bytes a second, as the far end of a slow
// link does: its sleeps are the fault the tests inject.
type slowReader struct {
	r    io.Reader
	rate int
}

func (s *slowReader) Read(b []byte) (int, error) {
	chunk := max(s.rate/20, 1) // 50 ms worth at a time
	n, err := s.r.Read(b[:min(len(b), chunk)])
	time.Sleep(time.Duration(n) * time.Second / time.Duration(s.rate))
	return n, err
}

// receive waits for a value from ch (see testwait.Receive).
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	return testwait.Receive(t, ch, what)
}
