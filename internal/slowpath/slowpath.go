// Package slowpath gives a device's transports the small socket send
// buffer of a device on a slow path, for tests and benchmarks that run a
// slow link on loopback with internal/faultproxy.
//
// On loopback a socket takes megabytes before its writes block (the
// kernel's tcp_wmem maximum). Behind a slow link, a device's answers would
// then wait in the kernel, and a PINGREQ written behind them would wait
// longer than any keep-alive. With a small send buffer the device's own
// writes wait for the link, as on a real device, and a PINGREQ waits in
// the SDK's writer, where its PINGRESP wait has not begun.
package slowpath

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"github.com/directmethods/iotdevice/internal/ws"
	"github.com/directmethods/iotdevice/transport"
	"github.com/directmethods/iotdevice/transport/amqp"
	"github.com/directmethods/iotdevice/transport/mqtt"
)

// Dialer returns the dialer of transport name ("mqtt", "mqtt-ws", "amqp"
// or "amqp-ws") that dials with a socket send buffer of sendBuffer bytes,
// with the transport's defaults otherwise.
func Dialer(name string, sendBuffer int) (transport.Dialer, error) {
	dialTCP := tcpDialer(sendBuffer)
	overTLS := &transport.Network{Name: "tls", Dial: func(ctx context.Context, address string, tlsConfig *tls.Config, _ *transport.Config) (net.Conn, error) {
		nc, err := dialTCP(ctx, "tcp", address)
		if err != nil {
			return nil, err
		}
		tc := tls.Client(nc, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, err
		}
		return tc, nil
	}}
	overWS := func(subprotocol string) *transport.Network {
		return &transport.Network{Name: "ws", Dial: func(ctx context.Context, address string, tlsConfig *tls.Config, _ *transport.Config) (net.Conn, error) {
			return ws.Dial(ctx, address, ws.Options{Subprotocol: subprotocol, TLSConfig: tlsConfig, DialContext: dialTCP})
		}}
	}
	switch name {
	case "mqtt":
		return mqtt.NewDialer(&mqtt.Options{Network: overTLS}), nil
	case "mqtt-ws":
		return mqtt.NewDialer(&mqtt.Options{Network: overWS("mqtt")}), nil
	case "amqp":
		return amqp.NewDialer(&amqp.Options{Network: overTLS}), nil
	case "amqp-ws":
		return amqp.NewDialer(&amqp.Options{Network: overWS("AMQPWSB10")}), nil
	}
	return nil, fmt.Errorf("slowpath: no transport %q", name)
}

// tcpDialer returns a function that dials TCP and sets the socket's send
// buffer to sendBuffer bytes.
func tcpDialer(sendBuffer int) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, network, address)
		if err != nil {
			return nil, err
		}
		if err := nc.(*net.TCPConn).SetWriteBuffer(sendBuffer); err != nil {
			nc.Close()
			return nil, fmt.Errorf("slowpath: set send buffer: %w", err)
		}
		return nc, nil
	}
}
