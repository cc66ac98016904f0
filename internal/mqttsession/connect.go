package mqttsession

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/directmethods/iotdevice/internal/mqttwire"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// ConnackError is a CONNACK that refused the connection.
type ConnackError struct {
	Code byte // the CONNACK return code, 1 to 5
}

func (e *ConnackError) Error() string {
	if cause := packets.ConnErrors[e.Code]; cause != nil {
		return fmt.Sprintf("connection refused (code %d: %v)", e.Code, cause)
	}
	return fmt.Sprintf("connection refused (code %d)", e.Code)
}

// Connect sends connect on nc and reads the CONNACK, within ctx, which
// must have a deadline. It returns the reader to start the session with.
// A refused CONNACK is a *ConnackError.
func Connect(ctx context.Context, nc net.Conn, connect *packets.ConnectPacket) (*bufio.Reader, error) {
	br := bufio.NewReaderSize(nc, 4096)
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)
	// Cancelling ctx moves the deadline to the past, which ends a read or
	// write in progress at once.
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	err := exchangeConnect(nc, br, connect)
	if !stop() {
		return nil, fmt.Errorf("mqtt: connect: %w", context.Cause(ctx))
	}
	if err != nil {
		if ctxErr := context.Cause(ctx); ctxErr != nil && !errors.Is(err, ctxErr) {
			return nil, fmt.Errorf("mqtt: connect: %w (%w)", ctxErr, err)
		}
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	return br, nil
}

// exchangeConnect writes CONNECT and reads the CONNACK.
func exchangeConnect(nc net.Conn, br *bufio.Reader, connect *packets.ConnectPacket) error {
	var b bytes.Buffer
	if err := connect.Write(&b); err != nil {
		return fmt.Errorf("mqtt: connect: %w", err)
	}
	if _, err := nc.Write(b.Bytes()); err != nil {
		return fmt.Errorf("mqtt: connect: %w", err)
	}
	p, err := mqttwire.ReadPacket(br, mqttwire.MaxPacketSize)
	if err != nil {
		return fmt.Errorf("mqtt: connect: read CONNACK: %w", err)
	}
	ack, ok := p.(*packets.ConnackPacket)
	if !ok {
		return fmt.Errorf("mqtt: connect: %w: %s instead of CONNACK", mqttwire.ErrMalformedPacket, PacketKind(p))
	}
	if ack.ReturnCode != packets.Accepted {
		return &ConnackError{Code: ack.ReturnCode}
	}
	return nil
}
