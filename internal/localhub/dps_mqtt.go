package localhub

import (
	"fmt"
	"strings"
	"time"

	"github.com/directmethods/iotdevice/internal/mqttwire"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// connackIdentifierRejected is MQTT 3.1.1's CONNACK code 2.
const connackIdentifierRejected = 2

// dpsSession is what an MQTT session with the Device Provisioning Service
// keeps: a CONNECT whose username is "{idScope}/registrations/{id}/…"
// opens one on the hub's MQTT listeners. Set when the CONNECT is
// accepted, then used by the session's serve goroutine only.
//
// DPS answers only on $dps/registrations/res/#, at the QoS granted (at
// most 1), and keeps no session whatever CleanSession says ("Use MQTT to
// communicate with DPS", learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-dps).
// The device's credentials are checked at each request, not at CONNECT:
// DPS accepts the connection and answers a registration it cannot attest
// with 401 (MicrosoftDocs/azure-docs issue #43157).
type dpsSession struct {
	id         mqttwire.DPSIdentity
	password   string
	subscribed bool
	qos        byte // of the answers: the QoS granted
}

// isDPSUsername reports whether a CONNECT's username opens a session with
// DPS: "{idScope}/registrations/…", and not the username of a device
// named "registrations", which starts with the hub's host name.
func (s *mqttSession) isDPSUsername(username string) bool {
	first, _, _ := strings.Cut(username, "/")
	return mqttwire.IsDPSUsername(username) && !strings.EqualFold(first, s.hub.hostName)
}

// authenticateDPS checks a DPS CONNECT: the username's form, and the
// client id, which must be the registration id.
func (s *mqttSession) authenticateDPS(c *packets.ConnectPacket) (code byte, ok bool) {
	id, err := mqttwire.ParseDPSUsername(c.Username)
	if err != nil {
		s.log.Warn("dps: connect refused", "reason", err, "connack", connackBadUsernameOrPassord)
		return connackBadUsernameOrPassord, true
	}
	if c.ClientIdentifier != id.RegistrationID {
		s.log.Warn("dps: connect refused", "reason", "client id is not the username's registration id",
			"client_id", clip(c.ClientIdentifier), "connack", connackIdentifierRejected)
		return connackIdentifierRejected, true
	}
	s.dps = &dpsSession{id: id, password: string(c.Password)}
	s.keepAlive = time.Duration(c.Keepalive) * time.Second
	s.log = s.log.With("service", "dps", "registration_id", clip(id.RegistrationID))
	return connackAccepted, true
}

// acceptDPS answers an accepted DPS CONNECT; it reports whether the
// session may go on.
func (s *mqttSession) acceptDPS(ack *packets.ConnackPacket) bool {
	ack.SessionPresent = false
	if err := ack.Write(s.conn); err != nil {
		return false
	}
	s.log.Info("dps: connected", "keep_alive", s.keepAlive)
	return true
}

// handleDPS processes the packets of a DPS session that differ from the
// hub's: publishes, their acknowledgements and subscriptions. It reports
// false for the others (PINGREQ, DISCONNECT, …), which the hub's
// handling serves. An error ends the session.
func (s *mqttSession) handleDPS(p packets.ControlPacket) (handled bool, err error) {
	switch p := p.(type) {
	case *packets.PublishPacket:
		return true, s.handleDPSPublish(p)
	case *packets.PubackPacket:
		return true, nil // acknowledges an answer; nothing is redelivered
	case *packets.SubscribePacket:
		return true, s.handleDPSSubscribe(p)
	case *packets.UnsubscribePacket:
		if len(p.Topics) == 0 {
			return true, fmt.Errorf("%w: UNSUBSCRIBE without topics", mqttwire.ErrMalformedPacket)
		}
		ack := packets.NewControlPacket(packets.Unsuback).(*packets.UnsubackPacket)
		ack.MessageID = p.MessageID
		for _, f := range p.Topics {
			if f == mqttwire.DPSResponseFilter {
				s.dps.subscribed = false
			}
		}
		return true, s.send(ack)
	}
	return false, nil
}

// handleDPSSubscribe grants $dps/registrations/res/# at most QoS 1 and
// refuses every other filter: DPS supports only its documented topics.
func (s *mqttSession) handleDPSSubscribe(p *packets.SubscribePacket) error {
	ack, err := subackFor(p, func(filter string, granted byte) byte {
		if filter != mqttwire.DPSResponseFilter {
			return 0x80
		}
		s.dps.subscribed, s.dps.qos = true, granted
		return granted
	})
	if err != nil {
		return err
	}
	return s.send(ack)
}

// handleDPSPublish handles a registration or an operation status request
// and publishes DPS's answer. A PUBLISH to any other topic ends the
// session, as does one at QoS 2.
func (s *mqttSession) handleDPSPublish(p *packets.PublishPacket) error {
	if p.Qos > 1 {
		return fmt.Errorf("%w: PUBLISH with QoS %d is not supported", mqttwire.ErrMalformedPacket, p.Qos)
	}
	r, err := mqttwire.ParseDPSRequestTopic(p.TopicName)
	if err != nil {
		return err
	}
	if p.Qos == 1 {
		ack := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
		ack.MessageID = p.MessageID
		if err := s.send(ack); err != nil {
			return err
		}
	}
	req := deviceRequest{
		idScope:        s.dps.id.IDScope,
		registrationID: s.dps.id.RegistrationID,
		apiVersion:     s.dps.id.APIVersion,
		operationID:    r.OperationID,
		body:           p.Payload,
		transport:      s.transport,
	}
	if s.dps.password != "" {
		req.proof.token = s.dps.password
	} else {
		req.proof.chain = s.peerChain
	}
	var a dpsAnswer
	if r.Kind == mqttwire.DPSRegister {
		a = s.hub.dps.register(s.hub.ctx, req, time.Now())
	} else {
		a = s.hub.dps.poll(req, time.Now())
	}
	if !s.dps.subscribed {
		s.log.Info("dps: answer not sent: the device has not subscribed to " + mqttwire.DPSResponseFilter)
		return nil
	}
	answer := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	answer.TopicName = mqttwire.DPSResponseTopic(a.status, r.RequestID, int(a.retryAfter/time.Second))
	answer.Qos = s.dps.qos
	answer.Payload = a.body
	return s.send(answer)
}
