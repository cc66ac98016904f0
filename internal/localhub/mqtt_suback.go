package localhub

import (
	"fmt"

	"github.com/directmethods/iotdevice/internal/mqttwire"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// subackFor answers a SUBSCRIBE, for the hub's sessions and DPS's alike:
// grant returns the return code of each filter, given the QoS the hub
// would grant (what was asked, at most 1), or 0x80 to refuse it. A
// SUBSCRIBE without filters or asking for a QoS above 2 is a protocol
// error, and grant is not called.
func subackFor(p *packets.SubscribePacket, grant func(filter string, qos byte) byte) (*packets.SubackPacket, error) {
	if len(p.Topics) == 0 {
		return nil, fmt.Errorf("%w: SUBSCRIBE without topics", mqttwire.ErrMalformedPacket)
	}
	for _, qos := range p.Qoss {
		if qos > 2 {
			return nil, fmt.Errorf("%w: SUBSCRIBE with QoS %d", mqttwire.ErrMalformedPacket, qos)
		}
	}
	ack := packets.NewControlPacket(packets.Suback).(*packets.SubackPacket)
	ack.MessageID = p.MessageID
	for i, filter := range p.Topics {
		ack.ReturnCodes = append(ack.ReturnCodes, grant(filter, min(p.Qoss[i], 1)))
	}
	return ack, nil
}
