package provisioning

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/internal/leakcheck"
	"github.com/directmethods/iotdevice/internal/mqttwire"
	"github.com/directmethods/iotdevice/internal/testcert"
	"github.com/directmethods/iotdevice/internal/testwait"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// waitTimeout bounds every wait of the tests.
const waitTimeout = 10 * time.Second

// A scripted DPS endpoint: MQTT over TLS on 127.0.0.1, built on paho's
// packets, answering each request as the test's script says.

// dpsRequest is one request a device sent, as the scripted DPS saw it.
type dpsRequest struct {
	conn int // which connection, from 1
	mqttwire.DPSRequest
	body []byte
	at   time.Time
}

// reply is one answer the script sends; status 0 closes the connection
// instead.
type reply struct {
	status     int
	retryAfter int
	body       string
}

// dpsScript says how the scripted DPS answers.
type dpsScript struct {
	connack     byte                       // CONNACK return code; 0 accepts
	requireCert bool                       // ask for a TLS client certificate
	answer      func(r dpsRequest) []reply // the answers to a request, in order
}

// connectInfo is what a CONNECT carried, and the client certificate.
type connectInfo struct {
	packet    *packets.ConnectPacket
	peerCerts []*x509.Certificate
	filters   []string
	qos       []byte
}

// scriptedDPS runs a dpsScript.
type scriptedDPS struct {
	script   dpsScript
	ln       net.Listener
	roots    *x509.CertPool
	connects chan connectInfo
	requests chan dpsRequest
	wg       sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn
	count int
}

func startDPS(t *testing.T, script dpsScript) *scriptedDPS {
	t.Helper()
	cert, roots, err := testcert.Server()
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if script.requireCert {
		cfg.ClientAuth = tls.RequireAnyClientCert
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := &scriptedDPS{script: script, ln: ln, roots: roots, connects: make(chan connectInfo, 16), requests: make(chan dpsRequest, 64)}
	d.wg.Go(func() { // owned by the endpoint; ends when close closes the listener, joined there
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d.mu.Lock()
			d.conns = append(d.conns, c)
			d.count++
			n := d.count
			d.mu.Unlock()
			d.wg.Go(func() { d.serve(c, n) }) // owned by the endpoint; ends with the connection, joined in close
		}
	})
	t.Cleanup(d.close)
	return d
}

func (d *scriptedDPS) close() {
	d.ln.Close()
	d.mu.Lock()
	for _, c := range d.conns {
		c.Close()
	}
	d.mu.Unlock()
	d.wg.Wait()
}

func (d *scriptedDPS) port() int { return d.ln.Addr().(*net.TCPAddr).Port }

// options are client options that reach this endpoint.
func (d *scriptedDPS) options() *Options {
	return &Options{Host: "localhost", Port: d.port(), TLSConfig: &tls.Config{RootCAs: d.roots},
		Backoff: func(int) time.Duration { return 10 * time.Millisecond }}
}

func (d *scriptedDPS) serve(c net.Conn, n int) {
	defer c.Close()
	tc := c.(*tls.Conn)
	if err := tc.Handshake(); err != nil {
		return
	}
	br := bufio.NewReader(c)
	p, err := mqttwire.ReadPacket(br, mqttwire.MaxPacketSize)
	if err != nil {
		return
	}
	connect, ok := p.(*packets.ConnectPacket)
	if !ok {
		return
	}
	info := connectInfo{packet: connect, peerCerts: tc.ConnectionState().PeerCertificates}
	ack := packets.NewControlPacket(packets.Connack).(*packets.ConnackPacket)
	ack.ReturnCode = d.script.connack
	if ack.Write(c) != nil || ack.ReturnCode != 0 {
		d.connects <- info
		return
	}
	for {
		p, err := mqttwire.ReadPacket(br, mqttwire.MaxPacketSize)
		if err != nil {
			return
		}
		switch p := p.(type) {
		case *packets.SubscribePacket:
			info.filters, info.qos = p.Topics, p.Qoss
			d.connects <- info
			sa := packets.NewControlPacket(packets.Suback).(*packets.SubackPacket)
			sa.MessageID, sa.ReturnCodes = p.MessageID, []byte{1}
			if sa.Write(c) != nil {
				return
			}
		case *packets.PublishPacket:
			if p.Qos == 1 {
				pa := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
				pa.MessageID = p.MessageID
				if pa.Write(c) != nil {
					return
				}
			}
			parsed, err := mqttwire.ParseDPSRequestTopic(p.TopicName)
			if err != nil {
				return
			}
			req := dpsRequest{conn: n, DPSRequest: parsed, body: p.Payload, at: time.Now()}
			d.requests <- req
			for _, r := range d.script.answer(req) {
				if r.status == 0 {
					return
				}
				a := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
				a.TopicName = mqttwire.DPSResponseTopic(r.status, req.RequestID, r.retryAfter)
				a.Payload = []byte(r.body)
				if a.Write(c) != nil {
					return
				}
			}
		case *packets.PingreqPacket:
			if packets.NewControlPacket(packets.Pingresp).Write(c) != nil {
				return
			}
		case *packets.UnsubscribePacket, *packets.PubackPacket:
		case *packets.DisconnectPacket:
			_, _ = io.Copy(io.Discard, c)
			return
		default:
			return
		}
	}
}

// receive waits for a value from ch (see testwait.Receive).
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	return testwait.Receive(t, ch, what)
}
