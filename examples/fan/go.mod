module github.com/directmethods/iotdevice/examples/fan

go 1.25.0

// The fan links periph.io for its GPIO pin. It is a module of its own so
// that periph.io never enters the module graph of programs that use only
// the SDK; it builds against the SDK in this repository.
replace github.com/directmethods/iotdevice => ../..

require (
	github.com/directmethods/iotdevice v0.0.0-00010101000000-000000000000
	github.com/google/go-cmp v0.7.0
	periph.io/x/conn/v3 v3.7.3
	periph.io/x/host/v3 v3.8.5
)

require (
	github.com/Azure/go-amqp v1.7.0 // indirect
	github.com/coder/websocket v1.8.15 // indirect
	github.com/eclipse/paho.mqtt.golang v1.5.1 // indirect
)
