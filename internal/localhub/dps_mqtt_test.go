package localhub

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/directmethods/iotdevice/internal/mqttsession"
	"github.com/directmethods/iotdevice/internal/mqttwire"
)

// TestDPSConnect checks a DPS CONNECT's username and client id. The
// credentials themselves are checked by each request, as DPS does.
func TestDPSConnect(t *testing.T) {
	t.Parallel()
	h := startDPSHub(t, Options{})
	scope := h.IDScope()
	tests := []struct {
		name   string
		modify func(c *packets.ConnectPacket)
		want   byte // 0: accepted
	}{
		{"as the SDKs send it", func(c *packets.ConnectPacket) {}, 0},
		{"without ClientVersion", func(c *packets.ConnectPacket) { c.Username = scope + "/registrations/dev/api-version=2019-03-31" }, 0},
		{"persistent session asked", func(c *packets.ConnectPacket) { c.CleanSession = false }, 0},
		{"no password", func(c *packets.ConnectPacket) { c.PasswordFlag, c.Password = false, nil }, 0},
		{"client id is another registration", func(c *packets.ConnectPacket) { c.ClientIdentifier = "other" }, connackIdentifierRejected},
		{"no api-version", func(c *packets.ConnectPacket) { c.Username = scope + "/registrations/dev/" }, connackBadUsernameOrPassord},
		{"no registration id", func(c *packets.ConnectPacket) { c.Username = scope + "/registrations//api-version=2019-03-31" }, connackBadUsernameOrPassord},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := newDPSDevice(t, h, "mqtt", "dev", "SharedAccessSignature sr=x&sig=eA%3D%3D&se=1", nil)
			c := d.connectPacket()
			tt.modify(c)
			_, err := d.dialDPS(t, c)
			var refused *mqttsession.ConnackError
			switch {
			case tt.want == 0 && err != nil:
				t.Errorf("CONNECT refused: %v", err)
			case tt.want != 0 && (!errors.As(err, &refused) || refused.Code != tt.want):
				t.Errorf("CONNECT: %v, want CONNACK %d", err, tt.want)
			}
		})
	}
}

// TestDPSMQTTTopics grants only DPS's answer filter, answers at the QoS
// granted, and ends the session on a publish to any other topic.
func TestDPSMQTTTopics(t *testing.T) {
	t.Parallel()
	h := startDPSHub(t, Options{})
	ind, _ := h.PutEnrollment("dev", EnrollmentSpec{})
	token := dpsToken(t, h.IDScope(), "dev", ind.PrimaryKey, time.Now().Add(time.Hour))
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()

	for _, tr := range []string{"mqtt", "mqtt-ws"} {
		d := newDPSDevice(t, h, tr, "dev", token, nil)
		m, err := d.dialDPS(t, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"$iothub/methods/POST/#", "$dps/registrations/#", "#"} {
			if code, err := m.s.Subscribe(ctx, f, 1); err != nil || code != 0x80 {
				t.Errorf("%s: SUBSCRIBE %s = %#x, %v; want refused (0x80)", tr, f, code, err)
			}
		}
		if code, err := m.s.Subscribe(ctx, mqttwire.DPSResponseFilter, 0); err != nil || code != 0 {
			t.Fatalf("%s: SUBSCRIBE at QoS 0 = %d, %v", tr, code, err)
		}
		if err := m.s.Publish(ctx, mqttwire.DPSRegisterTopic("7"), 0, []byte(`{"registrationId":"dev"}`), nil); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-m.answers:
			if p.Qos != 0 || p.TopicName != mqttwire.DPSResponseTopic(http.StatusAccepted, "7", 1) {
				t.Errorf("%s: answer %s at QoS %d, want 202 with retry-after 1 at QoS 0", tr, p.TopicName, p.Qos)
			}
		case <-ctx.Done():
			t.Fatalf("%s: no answer", tr)
		}
		// At QoS 0: the session may end before a PUBACK could come.
		if err := m.s.Publish(ctx, "$iothub/methods/res/200/?$rid=1", 0, []byte(`{}`), nil); err != nil {
			t.Fatal(err)
		}
		select {
		case <-m.s.Done():
		case <-ctx.Done():
			t.Fatalf("%s: a publish outside DPS's topics did not end the session", tr)
		}
	}
}

// TestDPSMQTTUnsubscribed sends no answer to a device that has not
// subscribed to DPS's answers.
func TestDPSMQTTUnsubscribed(t *testing.T) {
	t.Parallel()
	h := startDPSHub(t, Options{})
	ind, _ := h.PutEnrollment("dev", EnrollmentSpec{})
	d := newDPSDevice(t, h, "mqtt", "dev", dpsToken(t, h.IDScope(), "dev", ind.PrimaryKey, time.Now().Add(time.Hour)), nil)
	m, err := d.dialDPS(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if err := m.s.Publish(ctx, mqttwire.DPSRegisterTopic("1"), 1, nil, nil); err != nil {
		t.Fatal(err)
	}
	// The session goes on: a SUBSCRIBE is acknowledged after the answer
	// that was not sent, and the next request is answered.
	if _, err := m.s.Subscribe(ctx, mqttwire.DPSResponseFilter, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-m.answers:
		t.Fatalf("answer %s before the device subscribed", p.TopicName)
	default:
	}
	d.mqtt = m
	if r := d.register(t, ""); r.status != http.StatusAccepted {
		t.Errorf("register after subscribing = %v", r)
	}
}
