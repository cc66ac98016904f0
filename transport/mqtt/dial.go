package mqtt

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/directmethods/iotdevice/internal/mqttsession"
	"github.com/directmethods/iotdevice/internal/mqttwire"
	"github.com/directmethods/iotdevice/internal/netdial"
	"github.com/directmethods/iotdevice/transport"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// Dialer connects identities to IoT Hub over MQTT 3.1.1. It keeps no
// per-connection state and is safe for concurrent use.
type Dialer struct {
	opts           Options
	connectTimeout time.Duration // bounds a Dial whose ctx has no deadline; a test hook
}

var _ transport.Dialer = (*Dialer)(nil)

// NewDialer returns a Dialer; nil opts means the defaults.
func NewDialer(opts *Options) *Dialer {
	return &Dialer{opts: opts.withDefaults(), connectTimeout: defaultConnectTimeout}
}

// Dial opens the network connection (Options.Network, TLS by default),
// sends CONNECT, subscribes to method requests at QoS 0 and returns once
// the SUBACK granted the subscription. It obtains exactly one token from
// cfg.Credential. ctx bounds the whole attempt; a failure after the
// CONNACK disconnects before Dial returns.
func (d *Dialer) Dial(ctx context.Context, cfg *transport.Config) (transport.Conn, error) {
	if cfg == nil {
		return nil, errors.New("mqtt: nil config")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.connectTimeout)
		defer cancel()
	}
	if err := netdial.Check(d.opts.Network); err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	tlsConfig, err := cfg.ClientTLS()
	if err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	password, _, err := cfg.Credential.Token(ctx, cfg.Resource())
	if err != nil {
		return nil, fmt.Errorf("mqtt: get token: %w", err)
	}
	network := d.opts.Network
	address := cfg.Address(network.DefaultPort)
	nc, err := network.Dial(ctx, address, tlsConfig, cfg)
	if err != nil {
		return nil, fmt.Errorf("mqtt: connect: %w (endpoint %s)", err, address)
	}
	br, err := mqttsession.Connect(ctx, nc, connectPacket(cfg, password))
	if err != nil {
		_ = nc.Close()
		var refused *mqttsession.ConnackError
		if errors.As(err, &refused) {
			err = connackError(refused)
		}
		return nil, fmt.Errorf("%w (endpoint %s)", err, address)
	}
	c := startConn(nc, br, cfg, &d.opts)
	if err := c.subscribe(ctx); err != nil {
		c.Close()
		return nil, err
	}
	c.log.Info("mqtt connected", "endpoint", address, "network", network.Name)
	return c, nil
}

// connectPacket is the CONNECT of cfg's identity.
//
// It asks for a clean session. The C and C# SDKs keep the session
// (CleanSession 0: azure-iot-sdk-c, iothubtransport_mqtt_common.c, sets
// useCleanSession false; the C# IotHubClientMqttSettings.CleanSession
// defaults to false) so that cloud-to-device messages queued while a
// device was away arrive on its next connection. A device that only serves
// methods gains nothing from it: requests are QoS 0, never kept for an
// absent device, and Dial subscribes again every time. A kept session
// would also bring the subscriptions an earlier client of the same
// identity left behind, such as cloud-to-device messages at QoS 1, which
// this session would have to leave unacknowledged. A clean session
// discards them, and the hub keeps its queued messages for a client that
// asks for them.
func connectPacket(cfg *transport.Config, password string) *packets.ConnectPacket {
	p := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	p.ProtocolName, p.ProtocolVersion = "MQTT", 4
	p.CleanSession = true
	p.ClientIdentifier = cfg.ClientID()
	p.UsernameFlag, p.Username = true, mqttwire.Username(cfg)
	if password != "" {
		p.PasswordFlag, p.Password = true, []byte(password)
	}
	p.Keepalive = uint16(keepAlive(cfg.KeepAlive) / time.Second)
	return p
}

func keepAlive(d time.Duration) time.Duration {
	if d <= 0 {
		return defaultKeepAlive
	}
	// MQTT counts keep-alive in whole seconds; zero would disable it.
	return min(max(d.Round(time.Second), time.Second), maxKeepAlive)
}
