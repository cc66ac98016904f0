package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	goamqp "github.com/Azure/go-amqp"
)

// The IoT Hub AMQP facts the raw device needs, as internal/amqpwire and
// internal/ws document them with their sources. The raw device keeps its
// own copy so that it shares no code with the SDK it is compared with.
const (
	rawAMQPSubprotocol  = "AMQPWSB10"
	rawMethodNameKey    = "IoThub-methodname"
	rawStatusKey        = "IoThub-status"
	rawAPIVersionKey    = "com.microsoft:api-version"
	rawChannelKey       = "com.microsoft:channel-correlation-id"
	rawAMQPCredit       = 100
	rawAMQPCloseTimeout = 5 * time.Second
)

// rawAMQP is the echo device written directly on go-amqp: its own TLS or
// WebSocket dial, SASL PLAIN with a device token, the two method links, and
// one loop that receives, accepts and answers. Acknowledged answers are
// sent unsettled, each on its own goroutine, since go-amqp's Send then
// waits for the hub's disposition and the loop must not.
type rawAMQP struct {
	conn         *goamqp.Conn
	receiver     *goamqp.Receiver
	sender       *goamqp.Sender
	acknowledged bool
	stop         context.CancelFunc
	done         chan struct{}  // closed when serve returns
	sends        sync.WaitGroup // acknowledged answers being sent
}

// connectRawAMQP connects as the identity of connectionString and returns
// once both method links are attached; acknowledged sends answers
// unsettled instead of pre-settled.
func connectRawAMQP(ctx context.Context, webSocket, acknowledged bool, t *Target, connectionString string) (Device, error) {
	cs, token, err := rawIdentity(connectionString)
	if err != nil {
		return nil, err
	}
	hubName, _, _ := strings.Cut(cs.HostName, ".")

	port := t.AMQPPort
	if webSocket {
		port = t.HTTPSPort
	}
	if port == 0 {
		port = 5671
		if webSocket {
			port = 443
		}
	}
	address := net.JoinHostPort(cs.HostName, strconv.Itoa(port))
	tlsConfig := &tls.Config{RootCAs: t.Roots, ServerName: cs.HostName, MinVersion: tls.VersionTLS12}
	var nc net.Conn
	if webSocket {
		nc, err = dialRawWebSocket(ctx, address, tlsConfig, rawAMQPSubprotocol)
	} else {
		d := tls.Dialer{Config: tlsConfig}
		nc, err = d.DialContext(ctx, "tcp", address)
	}
	if err != nil {
		return nil, fmt.Errorf("bench: raw device: dial: %w", err)
	}
	conn, err := goamqp.NewConn(ctx, nc, &goamqp.ConnOptions{
		HostName: cs.HostName,
		SASLType: goamqp.SASLTypePlain(cs.DeviceID+"@sas."+hubName, token),
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("bench: raw device: open: %w", err)
	}
	d := &rawAMQP{conn: conn, acknowledged: acknowledged, done: make(chan struct{})}
	if err := d.attach(ctx, cs.DeviceID); err != nil {
		conn.Close()
		return nil, fmt.Errorf("bench: raw device: %w", err)
	}
	serveCtx, stop := context.WithCancel(context.Background())
	d.stop = stop
	go d.serve(serveCtx) // owned by d: ends on Close, joined by Close
	return d, nil
}

// attach begins a session and attaches the receiver and sender of the
// method address, with the settle modes the SDK uses for the same kind of
// answers.
func (d *rawAMQP) attach(ctx context.Context, deviceID string) error {
	session, err := d.conn.NewSession(ctx, nil)
	if err != nil {
		return err
	}
	address := "/devices/" + deviceID + "/methods/devicebound"
	// A channel id of its own per connection, as the SDKs use, so that the
	// hub never pairs these links with those of an earlier connection.
	var channel [16]byte
	if _, err := rand.Read(channel[:]); err != nil {
		return err
	}
	props := map[string]any{rawAPIVersionKey: rawAPIVersion, rawChannelKey: "methods:" + hex.EncodeToString(channel[:])}
	first := goamqp.ReceiverSettleModeFirst
	if d.receiver, err = session.NewReceiver(ctx, address, &goamqp.ReceiverOptions{
		Credit: rawAMQPCredit, SettlementMode: &first, Properties: props,
	}); err != nil {
		return err
	}
	answerMode := goamqp.SenderSettleModeSettled
	if d.acknowledged {
		answerMode = goamqp.SenderSettleModeUnsettled
	}
	d.sender, err = session.NewSender(ctx, address, &goamqp.SenderOptions{SettlementMode: &answerMode, Properties: props})
	return err
}

// serve receives, accepts and answers requests until ctx ends or the
// connection fails.
func (d *rawAMQP) serve(ctx context.Context) {
	defer close(d.done)
	for {
		msg, err := d.receiver.Receive(ctx, nil)
		if err != nil {
			return
		}
		if err := d.receiver.AcceptMessage(ctx, msg); err != nil {
			return
		}
		if msg.Properties == nil {
			continue // no correlation id: nothing can be answered
		}
		status, body := 200, echoPayload(bytes.Join(msg.Data, nil))
		if name, _ := msg.ApplicationProperties[rawMethodNameKey].(string); name != EchoMethod {
			status, body = 501, []byte(`{"error":"unknown method"}`)
		}
		resp := &goamqp.Message{
			Properties:            &goamqp.MessageProperties{CorrelationID: msg.Properties.CorrelationID},
			ApplicationProperties: map[string]any{rawStatusKey: int32(status)},
			Data:                  [][]byte{body},
		}
		if d.acknowledged {
			d.sends.Go(func() { _ = d.sender.Send(ctx, resp, nil) }) // owned by d: ends with its disposition or ctx, joined by Close
			continue
		}
		if err := d.sender.Send(ctx, resp, nil); err != nil {
			return
		}
	}
}

// Close stops the loop and closes the connection.
func (d *rawAMQP) Close() error {
	d.stop()
	<-d.done
	d.sends.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), rawAMQPCloseTimeout)
	defer cancel()
	d.sender.Close(ctx)
	d.receiver.Close(ctx)
	return d.conn.Close()
}
