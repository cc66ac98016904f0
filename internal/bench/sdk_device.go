package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/device/deviceflag"
	"github.com/directmethods/iotdevice/transport"
	"github.com/directmethods/iotdevice/transport/amqp"
	"github.com/directmethods/iotdevice/transport/amqp/amqpws"
	"github.com/directmethods/iotdevice/transport/mqtt"
	"github.com/directmethods/iotdevice/transport/mqtt/mqttws"
)

// sdkDevice is a device.Client running an echo handler.
type sdkDevice struct {
	client *device.Client
	done   chan error // Run's result
}

// echoHandler answers EchoMethod with the request's payload.
func echoHandler() device.MethodHandler {
	mux := device.NewMethodMux()
	mux.HandleFunc(EchoMethod, func(_ context.Context, req *device.MethodRequest) (*device.MethodResponse, error) {
		return &device.MethodResponse{Status: 200, Payload: req.Payload}, nil
	})
	return mux
}

// sdkDialer returns the transport of an SDK device of kind.
func sdkDialer(kind, name string) (transport.Dialer, error) {
	if kind != KindSDKAtMostOnce {
		dialer, err := deviceflag.Dialer(name)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		return dialer, nil
	}
	switch name {
	case "mqtt":
		return mqtt.NewDialer(&mqtt.Options{AnswerAtMostOnce: true}), nil
	case "mqtt-ws":
		return mqttws.NewDialer(&mqtt.Options{AnswerAtMostOnce: true}), nil
	case "amqp":
		return amqp.NewDialer(&amqp.Options{AnswerAtMostOnce: true}), nil
	case "amqp-ws":
		return amqpws.NewDialer(&amqp.Options{AnswerAtMostOnce: true}), nil
	}
	return nil, fmt.Errorf("bench: no transport %q", name)
}

// connectSDK starts a client of kind and waits for its first connection.
func connectSDK(ctx context.Context, kind, name string, t *Target, connectionString string) (Device, error) {
	dialer, err := sdkDialer(kind, name)
	if err != nil {
		return nil, err
	}
	connected := make(chan struct{})
	client, err := device.NewClientFromConnectionString(connectionString, &device.ClientOptions{
		Transport: dialer,
		Port:      t.Port(name),
		TLSConfig: &tls.Config{RootCAs: t.Roots},
		OnStateChange: func(s device.State, _ error) {
			if s == device.StateConnected {
				select {
				case <-connected:
				default:
					close(connected) // only this goroutine closes it
				}
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("bench: sdk device: %w", err)
	}
	d := &sdkDevice{client: client, done: make(chan error, 1)}
	go func() { d.done <- client.Run(context.Background(), echoHandler()) }() // owned by d: ends on Close, joined by Close
	select {
	case <-connected:
		return d, nil
	case err := <-d.done:
		d.done <- err // for Close
		d.Close()
		return nil, fmt.Errorf("bench: sdk device stopped: %w", err)
	case <-ctx.Done():
		d.Close()
		return nil, fmt.Errorf("bench: sdk device did not connect: %w", context.Cause(ctx))
	}
}

// Close stops the client and waits for Run to return.
func (d *sdkDevice) Close() error {
	d.client.Close()
	err := <-d.done
	d.done <- err // Close is idempotent
	if errors.Is(err, device.ErrClientClosed) {
		return nil
	}
	return err
}
