package amqp

import (
	"testing"

	"github.com/directmethods/iotdevice/internal/amqpwire"
	"github.com/google/go-cmp/cmp"
)

func TestMethodLinkProperties(t *testing.T) {
	tests := []struct {
		name               string
		userAgent, modelID string
		want               map[string]any
	}{
		{"bare", "", "", map[string]any{
			amqpwire.APIVersionProperty: amqpwire.APIVersion, amqpwire.ChannelCorrelationProperty: "methods:c",
		}},
		{"user agent and model id", "sdk/1", "dtmi:com:example:Thermostat;1", map[string]any{
			amqpwire.APIVersionProperty: amqpwire.APIVersion, amqpwire.ChannelCorrelationProperty: "methods:c",
			amqpwire.ClientVersionProperty: "sdk/1", "com.microsoft:model-id": "dtmi:com:example:Thermostat;1",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := methodLinkProperties("methods:c", tt.userAgent, tt.modelID)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
