package localhub

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/directmethods/iotdevice/internal/mqttwire"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// defaultConnectTimeout bounds the wait for a complete CONNECT, counted
// from the accept (so it covers the TLS handshake too) or, over a
// WebSocket, from the upgrade. A connection without a complete CONNECT by
// then is closed, so garbage that announces a long packet cannot hold it.
const defaultConnectTimeout = 10 * time.Second

// defaultMQTTWriteTimeout is the default of Options.MQTTWriteTimeout.
const defaultMQTTWriteTimeout = 30 * time.Second

// writeChunk is the most the writer hands the connection under one write
// deadline: one TLS record.
const writeChunk = 16 * 1024

// maxMethodPayload is the largest request or response body of a direct
// method (128 KB).
const maxMethodPayload = 128 * 1024

// CONNACK return codes of MQTT 3.1.1.
const (
	connackAccepted             = 0
	connackBadProtocolVersion   = 1
	connackBadUsernameOrPassord = 4
	connackNotAuthorized        = 5
)

// outQueueLen is the capacity of a session's outbound queue.
const outQueueLen = 64

// errClientDisconnected ends a session on the client's DISCONNECT.
var errClientDisconnected = errors.New("localhub: client sent DISCONNECT")

// mqttSession is one MQTT connection, over TLS or a WebSocket. Its serve
// goroutine reads and handles packets; a writer goroutine it owns sends
// everything queued on out.
type mqttSession struct {
	hub       *Hub
	conn      net.Conn
	transport string    // "mqtt" or "mqtt-ws", for logs
	peerChain certChain // the TLS client certificate chain, if any
	log       *slog.Logger

	// out is the writer's queue. It holds at most outQueueLen packets, so
	// at most about 8 MB of method requests wait for a device that reads
	// slowly; a device that stops reading is dropped after the write
	// timeout, and its queue with it.
	out       chan outbound
	done      chan struct{}
	closeOnce sync.Once

	// methodsLock orders requests against an UNSUBACK: deliver queues a
	// request only while methodsOn, and handleUnsubscribe clears it and
	// queues the UNSUBACK while holding it, so no request follows the
	// UNSUBACK on the wire. It is a one-slot channel, not a mutex, so that
	// deliver can give up waiting for it when its ctx ends.
	methodsLock chan struct{}
	methodsOn   atomic.Bool

	// connectBy ends the wait for the CONNECT; set at creation.
	connectBy time.Time

	// calls numbers this connection's method requests and matches the
	// answers that arrive on it.
	calls pendingCalls

	// Set once CONNECT succeeds, then read-only.
	identity    string
	modelID     string // the username's model-id, "" when none
	keepAlive   time.Duration
	tokenExpiry time.Time
	// dps is set on a session with the Device Provisioning Service
	// instead of IoT Hub (dps_mqtt.go).
	dps *dpsSession
}

// startMQTT runs an accepted MQTT connection on its own goroutine; it
// reports false once the hub is closing.
func (h *Hub) startMQTT(conn net.Conn) bool {
	tlsConn, ok := conn.(*tls.Conn)
	if !ok { // tls.NewListener always returns *tls.Conn
		conn.Close()
		return true
	}
	s := newMQTTSession(h, tlsConn, "mqtt", nil)
	if !h.track(s) {
		conn.Close()
		return false
	}
	go func() { // owned by the hub: ends when the connection closes (Close closes it); joined in Close
		defer h.untrack(s)
		peerChain, ok := h.handshake(tlsConn, s.connectBy)
		if !ok {
			conn.Close()
			return
		}
		s.peerChain = peerChain
		s.serve()
	}()
	return true
}

func newMQTTSession(h *Hub, conn net.Conn, transport string, peerChain certChain) *mqttSession {
	return &mqttSession{
		hub:         h,
		conn:        conn,
		transport:   transport,
		peerChain:   peerChain,
		log:         h.log.With("transport", transport, "remote", conn.RemoteAddr().String()),
		out:         make(chan outbound, outQueueLen),
		done:        make(chan struct{}),
		methodsLock: make(chan struct{}, 1),
		connectBy:   time.Now().Add(h.connectTimeout),
	}
}

// serve runs the session until the connection ends. It returns once the
// writer goroutine has ended too.
func (s *mqttSession) serve() {
	defer s.close()
	br := bufio.NewReader(s.conn)
	if err := s.conn.SetDeadline(s.connectBy); err != nil { // the CONNACK's write too
		return
	}
	// Leave the router at the end; a no-op if another session took over
	// or the session never attached.
	defer func() {
		if s.identity != "" {
			s.hub.router.detach(s.identity, s)
		}
	}()
	if !s.connect(br) {
		return
	}
	var writer sync.WaitGroup
	writer.Go(s.writeLoop) // owned by this session: ends when done closes; joined below
	defer writer.Wait()
	defer s.close() // runs before writer.Wait, so the writer stops
	for {
		if err := s.conn.SetReadDeadline(s.readDeadline()); err != nil {
			return
		}
		p, err := mqttwire.ReadPacket(br, mqttwire.MaxPacketSize)
		if err != nil {
			s.logEnd(err)
			return
		}
		if err := s.handle(p); err != nil {
			s.logEnd(err)
			return
		}
	}
}

// logEnd logs why the session ended.
func (s *mqttSession) logEnd(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, errClientDisconnected):
		s.log.Info("mqtt: client disconnected", "identity", s.identity)
	case errors.As(err, &ne) && ne.Timeout() && !s.tokenExpiry.IsZero() && !time.Now().Before(s.tokenExpiry):
		s.log.Info("mqtt: connection closed: token expired", "identity", s.identity)
	case errors.As(err, &ne) && ne.Timeout():
		s.log.Info("mqtt: connection closed: keep-alive expired", "identity", s.identity)
	default:
		select {
		case <-s.done:
			s.log.Info("mqtt: connection closed by the hub", "identity", s.identity)
		default:
			s.log.Info("mqtt: connection closed", "identity", s.identity, "err", err)
		}
	}
}

// maxKeepAliveTimeout is IoT Hub's longest server-side keep-alive
// timeout, whatever keep-alive the client asks for ("Communicate with an IoT
// hub using the MQTT protocol", learn.microsoft.com, keep-alive section).
const maxKeepAliveTimeout = 1767 * time.Second

// readDeadline is when the hub stops waiting for the client's next packet:
// 1.5 times the keep-alive from now, at most maxKeepAliveTimeout, or the
// token's expiry if that comes first. A keep-alive of 0, which MQTT lets a
// client use to turn keep-alive off, gets maxKeepAliveTimeout too: the hub
// never waits for a silent client forever.
func (s *mqttSession) readDeadline() time.Time {
	timeout := maxKeepAliveTimeout
	if s.keepAlive > 0 {
		timeout = min(s.keepAlive*3/2, maxKeepAliveTimeout)
	}
	d := time.Now().Add(timeout)
	if !s.tokenExpiry.IsZero() && s.tokenExpiry.Before(d) {
		d = s.tokenExpiry
	}
	return d
}

// connect reads and answers CONNECT; it reports whether the session may go on.
func (s *mqttSession) connect(br *bufio.Reader) bool {
	p, err := mqttwire.ReadPacket(br, mqttwire.MaxPacketSize)
	if err != nil {
		s.log.Debug("mqtt: no CONNECT", "err", err)
		return false
	}
	c, ok := p.(*packets.ConnectPacket)
	if !ok {
		s.log.Info("mqtt: first packet is not CONNECT", "packet", fmt.Sprintf("%T", p))
		return false
	}
	code, ok := s.authenticate(c)
	if !ok { // not MQTT at all: close without CONNACK
		return false
	}
	ack := packets.NewControlPacket(packets.Connack).(*packets.ConnackPacket)
	ack.ReturnCode = code
	if code != connackAccepted {
		_ = ack.Write(s.conn)
		return false
	}
	if s.dps != nil {
		return s.acceptDPS(ack)
	}
	// A persistent session may get its method subscription back from the
	// router; deliver must then accept requests at once. (Without a saved
	// subscription the router routes nothing here until a SUBSCRIBE.)
	s.methodsOn.Store(!c.CleanSession)
	previous, restored := s.hub.router.attach(s.identity, s, c.CleanSession)
	s.hub.twins.connected(s.identity, s.modelID, time.Now())
	if previous != nil {
		previous.drop("another connection took over the identity")
	}
	ack.SessionPresent = !c.CleanSession && restored != nil
	if err := ack.Write(s.conn); err != nil {
		return false
	}
	s.log.Info("mqtt: connected", "identity", s.identity, "clean_session", c.CleanSession,
		"session_present", ack.SessionPresent, "keep_alive", s.keepAlive)
	return true
}

// authenticate checks a CONNECT and returns the CONNACK code; ok is false
// when the connection is to be closed without any CONNACK.
func (s *mqttSession) authenticate(c *packets.ConnectPacket) (code byte, ok bool) {
	refuse := func(code byte, reason string, attrs ...any) (byte, bool) {
		s.log.Warn("mqtt: connect refused", append([]any{"reason", reason, "connack", code, "client_id", clip(c.ClientIdentifier)}, attrs...)...)
		return code, true
	}
	if c.ProtocolName != "MQTT" && c.ProtocolName != "MQIsdp" || c.ReservedBit != 0 {
		s.log.Info("mqtt: not an MQTT CONNECT")
		return 0, false
	}
	if c.ProtocolVersion != 4 {
		return refuse(connackBadProtocolVersion, fmt.Sprintf("protocol level %d, want 4", c.ProtocolVersion))
	}
	if !c.UsernameFlag {
		return refuse(connackBadUsernameOrPassord, "no username")
	}
	if s.isDPSUsername(c.Username) {
		return s.authenticateDPS(c)
	}
	u, err := parseUsername(c.Username)
	if err != nil {
		return refuse(connackBadUsernameOrPassord, err.Error())
	}
	if !strings.EqualFold(u.hostName, s.hub.hostName) {
		return refuse(connackBadUsernameOrPassord, "username names another hub", "host", u.hostName)
	}
	if c.ClientIdentifier != u.identity() {
		return refuse(connackBadUsernameOrPassord, "client id does not match the username")
	}
	id, found := s.hub.reg.lookup(u.identity())
	if !found {
		return refuse(connackNotAuthorized, "identity not registered", "identity", u.identity())
	}
	if len(c.Password) == 0 && id.usesCertificate() {
		if err := s.hub.reg.authenticateCertificate(id, s.peerChain, time.Now()); err != nil {
			return refuse(connackNotAuthorized, err.Error(), "identity", u.identity())
		}
	} else {
		expiry, err := s.hub.reg.authenticateToken(id, string(c.Password), time.Now())
		if err != nil {
			return refuse(connackNotAuthorized, err.Error(), "identity", u.identity())
		}
		s.tokenExpiry = expiry
	}
	s.identity = u.identity()
	s.modelID = u.query[mqttModelIDParameter]
	s.keepAlive = time.Duration(c.Keepalive) * time.Second
	return connackAccepted, true
}

// handle processes one packet after CONNECT; an error ends the session.
func (s *mqttSession) handle(p packets.ControlPacket) error {
	if s.dps != nil {
		if handled, err := s.handleDPS(p); handled {
			return err
		}
	}
	switch p := p.(type) {
	case *packets.PublishPacket:
		return s.handlePublish(p)
	case *packets.PubackPacket:
		return nil // acknowledges a method request; nothing is redelivered
	case *packets.SubscribePacket:
		return s.handleSubscribe(p)
	case *packets.UnsubscribePacket:
		return s.handleUnsubscribe(p)
	case *packets.PingreqPacket:
		return s.send(packets.NewControlPacket(packets.Pingresp))
	case *packets.DisconnectPacket:
		return errClientDisconnected
	default:
		return fmt.Errorf("%w: unexpected %T", mqttwire.ErrMalformedPacket, p)
	}
}

func (s *mqttSession) handlePublish(p *packets.PublishPacket) error {
	if p.Qos > 1 {
		return fmt.Errorf("%w: PUBLISH with QoS %d is not supported", mqttwire.ErrMalformedPacket, p.Qos)
	}
	status, rid, err := parseMethodResponseTopic(p.TopicName)
	switch {
	case errors.Is(err, errNotMethodResponse):
		s.log.Debug("mqtt: ignoring publish outside method responses", "identity", s.identity)
	case err != nil:
		// The call it names, if any, ends now rather than at its timeout;
		// the connection ends for the protocol error.
		s.reject(rid, err)
		return err
	case len(p.Payload) > maxMethodPayload:
		err := fmt.Errorf("%w: payload of %d bytes exceeds %d", ErrInvalidResponse, len(p.Payload), maxMethodPayload)
		s.reject(rid, err)
		return err
	default:
		if !s.calls.resolveRID(rid, methodResponse{status: status, payload: p.Payload}) {
			s.log.Warn("mqtt: response to an unknown or expired request ignored", "identity", s.identity, "request_id", clip(rid))
		}
	}
	if p.Qos == 1 {
		ack := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
		ack.MessageID = p.MessageID
		return s.send(ack)
	}
	return nil
}

// reject fails the call an invalid answer names (rid may be empty).
func (s *mqttSession) reject(rid string, err error) {
	if rid == "" {
		return
	}
	if !errors.Is(err, ErrInvalidResponse) {
		err = fmt.Errorf("%w: %w", ErrInvalidResponse, err)
	}
	if s.calls.resolveRID(rid, methodResponse{err: err}) {
		s.log.Warn("mqtt: invalid method response; its call fails", "identity", s.identity, "request_id", clip(rid), "err", err)
	}
}

func (s *mqttSession) handleSubscribe(p *packets.SubscribePacket) error {
	methods, methodQoS := false, byte(0)
	ack, err := subackFor(p, func(filter string, granted byte) byte {
		switch {
		case filter == mqttwire.MethodsFilter:
			methods, methodQoS = true, granted
		case s.isOtherHubFilter(filter):
		default:
			return 0x80
		}
		return granted
	})
	if err != nil {
		return err
	}
	if !methods {
		return s.send(ack)
	}
	// The writer marks the subscription just before writing the SUBACK:
	// a client that has the SUBACK can be invoked at once, and requests
	// queued after the mark are written after the SUBACK.
	return s.enqueue(outbound{packet: ack, beforeWrite: func() {
		s.methodsOn.Store(true)
		s.hub.router.setSubscribed(s.identity, s, true, methodQoS)
		s.log.Info("mqtt: subscribed to methods", "identity", s.identity, "qos", methodQoS)
	}})
}

// isOtherHubFilter reports IoT Hub filters the hub grants but never
// publishes to: twin responses and desired properties, cloud-to-device.
func (s *mqttSession) isOtherHubFilter(filter string) bool {
	switch filter {
	case "$iothub/twin/res/#", "$iothub/twin/PATCH/properties/desired/#",
		"devices/" + s.identity + "/messages/devicebound/#":
		return true
	}
	return false
}

func (s *mqttSession) handleUnsubscribe(p *packets.UnsubscribePacket) error {
	if len(p.Topics) == 0 {
		return fmt.Errorf("%w: UNSUBSCRIBE without topics", mqttwire.ErrMalformedPacket)
	}
	ack := packets.NewControlPacket(packets.Unsuback).(*packets.UnsubackPacket)
	ack.MessageID = p.MessageID
	s.methodsLock <- struct{}{}
	defer func() { <-s.methodsLock }()
	for _, filter := range p.Topics {
		if filter == mqttwire.MethodsFilter {
			s.hub.router.setSubscribed(s.identity, s, false, 0)
			s.methodsOn.Store(false)
			s.log.Info("mqtt: unsubscribed from methods", "identity", s.identity)
		}
	}
	return s.send(ack)
}

// outbound is a packet queued for the writer, with an optional action the
// writer runs just before writing it. A method request carries its call:
// the writer skips it if the call has ended while it waited.
type outbound struct {
	packet      packets.ControlPacket
	beforeWrite func()
	call        *pendingCall
}

// send queues a packet for the writer.
func (s *mqttSession) send(p packets.ControlPacket) error {
	return s.enqueue(outbound{packet: p})
}

func (s *mqttSession) enqueue(o outbound) error {
	select {
	case s.out <- o:
		return nil
	case <-s.done:
		return net.ErrClosed
	}
}

// deliver implements deviceSession. A session that has ended refuses the
// request with net.ErrClosed, and the router looks for the identity's next
// connection; otherwise the request belongs to this connection (see
// handOver).
func (s *mqttSession) deliver(ctx context.Context, req methodRequest) (*pendingCall, error) {
	select {
	case <-s.done:
		return nil, net.ErrClosed
	default:
	}
	c := s.calls.add(ctx)
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.TopicName = methodRequestTopic(req.name, c.rid)
	p.Qos = req.qos
	p.Payload = req.payload
	if err := s.handOver(ctx, outbound{packet: p, call: c}); err != nil {
		s.calls.remove(c)
		return nil, err
	}
	return c, nil
}

// handOver queues a method request, waiting for the queue no longer than
// ctx allows. If the connection ends first, the request is lost with it,
// as the ones already queued are, and handOver reports success, so that
// the call ends at its response timeout as with any lost request.
func (s *mqttSession) handOver(ctx context.Context, o outbound) error {
	select {
	case s.methodsLock <- struct{}{}:
	case <-s.done:
		return nil // lost with the connection
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	defer func() { <-s.methodsLock }()
	if !s.methodsOn.Load() {
		return errNotSubscribed
	}
	select {
	case s.out <- o:
		return nil
	case <-s.done:
		return nil // lost with the connection
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// forget implements deviceSession.
func (s *mqttSession) forget(c *pendingCall) { s.calls.remove(c) }

// drop implements deviceSession.
func (s *mqttSession) drop(reason string) {
	s.log.Info("mqtt: dropping connection", "identity", s.identity, "reason", reason)
	s.close()
}

// close ends the session: it stops the writer and closes the connection;
// serve then leaves the router. It is idempotent and safe from any goroutine.
func (s *mqttSession) close() {
	s.closeOnce.Do(func() {
		close(s.done)
		_ = s.conn.Close()
	})
}

// Close implements io.Closer so the hub can end the session on shutdown.
func (s *mqttSession) Close() error {
	s.close()
	return nil
}

// writeLoop writes queued packets, numbering QoS 1 publishes, until the
// session ends or a write fails. A write that makes no progress for the
// hub's write timeout fails, and the session ends: the device has stopped
// reading.
func (s *mqttSession) writeLoop() {
	bw := bufio.NewWriter(deadlineWriter{conn: s.conn, timeout: s.hub.writeTimeout})
	var nextID uint16
	for {
		select {
		case <-s.done:
			return
		case o := <-s.out:
			if o.call != nil && o.call.ctx.Err() != nil {
				continue // its caller has stopped waiting
			}
			if o.beforeWrite != nil {
				o.beforeWrite()
			}
			p := o.packet
			if pub, ok := p.(*packets.PublishPacket); ok && pub.Qos > 0 {
				nextID++
				if nextID == 0 {
					nextID = 1
				}
				pub.MessageID = nextID
			}
			err := p.Write(bw)
			if err == nil && len(s.out) == 0 {
				err = bw.Flush()
			}
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					s.log.Info("mqtt: dropping connection: the device stopped reading", "identity", s.identity, "write_timeout", s.hub.writeTimeout)
				} else {
					s.log.Debug("mqtt: write failed", "identity", s.identity, "err", err)
				}
				s.close()
				return
			}
		}
	}
}

// deadlineWriter writes to a connection in pieces of at most writeChunk
// bytes, each under a fresh write deadline of timeout, so that a slow
// reader that keeps taking bytes is not cut off but one that takes none
// for timeout is.
type deadlineWriter struct {
	conn    net.Conn
	timeout time.Duration
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		if err := w.conn.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
			return written, err
		}
		n, err := w.conn.Write(p[written:min(len(p), written+writeChunk)])
		written += n
		if err != nil {
			return written, err
		}
	}
	return written, nil
}
