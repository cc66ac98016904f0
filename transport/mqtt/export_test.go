package mqtt

import (
	"crypto/x509"
	"strings"
	"testing"
)

// The scripted hub of hub_test.go, for the tests of package mqtt_test,
// which also use package device (an internal test cannot import it).

// TestHubName is the hub host name the scripted hub's identities name.
const TestHubName = testHub

// TestKey is the key the scripted hub's device signs its tokens with.
var TestKey = testKey

// ScriptedHub is a running scripted hub.
type ScriptedHub struct{ h *fakeHub }

// ScriptedSession is one connection to it.
type ScriptedSession struct{ s *session }

// StartHubWithoutPubacks starts a hub that never acknowledges what the
// device publishes.
func StartHubWithoutPubacks(t *testing.T) *ScriptedHub {
	return &ScriptedHub{startHub(t, hubScript{noPuback: true})}
}

// Port returns the hub's TLS port on 127.0.0.1.
func (h *ScriptedHub) Port() int { return h.h.port() }

// Roots returns the CA the hub's certificate chains to.
func (h *ScriptedHub) Roots() *x509.CertPool { return pki().roots }

// Subscribed waits for the next connection's subscription.
func (h *ScriptedHub) Subscribed(t *testing.T) *ScriptedSession {
	t.Helper()
	s := receive(t, h.h.sessions, "a session")
	receive(t, s.subscribes, "SUBSCRIBE")
	return &ScriptedSession{s}
}

// Request publishes a method request at QoS 0.
func (s *ScriptedSession) Request(t *testing.T, topic string, payload []byte) {
	t.Helper()
	s.s.request(t, topic, payload)
}

// Answer waits for the next PUBLISH from the device and returns the
// request id it answers, and its payload.
func (s *ScriptedSession) Answer(t *testing.T) (rid string, payload []byte) {
	t.Helper()
	p := receive(t, s.s.publishes, "an answer")
	return p.TopicName[strings.LastIndex(p.TopicName, "=")+1:], p.Payload
}
