package localhub

import (
	"github.com/directmethods/iotdevice/internal/amqp"
	"github.com/directmethods/iotdevice/internal/amqpwire"
)

// modelIDProperty is the attach property by which an AMQP client
// announces its IoT Plug and Play model ID (azure-iot-sdk-csharp,
// AmqpIotConstants.ModelId).
const modelIDProperty = amqp.Symbol(amqpwire.ModelIDProperty)

// linkModelID returns the model ID l announces, or "".
func linkModelID(l *amqp.Link) string {
	if l == nil {
		return ""
	}
	props := l.Properties()
	for _, key := range []any{modelIDProperty, string(modelIDProperty)} {
		if v, ok := props.Get(key); ok {
			if s, ok := v.(string); ok {
				return s
			}
		}
	}
	return ""
}

// modelID returns the model ID the channel's links announce: the request
// link's, or else the response link's.
func (ch *methodChannel) modelID() string {
	ch.conn.mu.Lock()
	request, response := ch.requestLink, ch.responseLink
	ch.conn.mu.Unlock()
	if id := linkModelID(request); id != "" {
		return id
	}
	return linkModelID(response)
}
