package mqttws_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/device/hubtest"
	"github.com/directmethods/iotdevice/transport/mqtt"
	"github.com/directmethods/iotdevice/transport/mqtt/mqttws"
)

// A device that reaches the hub over MQTT on port 443, as behind a
// firewall that lets only HTTPS out; here against a local hub, whose
// WebSocket endpoint is on its HTTPS port.
func ExampleNewDialer() {
	hub, err := hubtest.Start(context.Background(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	dev, err := hub.AddDevice("dev-1")
	if err != nil {
		log.Fatal(err)
	}

	client, err := device.NewClientFromConnectionString(dev.ConnectionString(), &device.ClientOptions{
		Transport: mqttws.NewDialer(&mqtt.Options{QueueSize: 64}),
		Port:      hub.Port(hubtest.MQTTWebSocket),
		TLSConfig: &tls.Config{RootCAs: hub.CertPool()},
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := device.NewMethodMux()
	mux.HandleFunc("ping", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
		return device.JSONResponse(200, "pong over MQTT over WebSockets")
	})
	done := make(chan error, 1)
	go func() { done <- client.Run(context.Background(), mux) }()
	defer func() { client.Close(); <-done }()

	res, err := dev.Invoke(context.Background(), "ping", nil, &hubtest.InvokeOptions{ConnectTimeout: 30 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status, string(res.Payload))
	// Output: 200 "pong over MQTT over WebSockets"
}

// A device behind an HTTP proxy: the WebSocket transports tunnel through
// it with CONNECT, and TLS runs end to end inside the tunnel, so the proxy
// sees neither the token nor the methods. Without Proxy the client uses
// HTTPS_PROXY and NO_PROXY from the environment.
func ExampleNewDialer_httpProxy() {
	hub, err := hubtest.Start(context.Background(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	dev, err := hub.AddDevice("dev-1")
	if err != nil {
		log.Fatal(err)
	}
	tunnels := &connectProxy{}
	proxy := httptest.NewServer(tunnels)
	defer proxy.Close()
	proxyURL, err := url.Parse(proxy.URL)
	if err != nil {
		log.Fatal(err)
	}

	client, err := device.NewClientFromConnectionString(dev.ConnectionString(), &device.ClientOptions{
		Transport: mqttws.NewDialer(nil),
		Proxy:     func(*url.URL) (*url.URL, error) { return proxyURL, nil },
		Port:      hub.Port(hubtest.MQTTWebSocket),
		TLSConfig: &tls.Config{RootCAs: hub.CertPool()},
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := device.NewMethodMux()
	mux.HandleFunc("ping", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
		return device.JSONResponse(200, "pong through the proxy")
	})
	done := make(chan error, 1)
	go func() { done <- client.Run(context.Background(), mux) }()
	defer func() { client.Close(); <-done }()

	res, err := dev.Invoke(context.Background(), "ping", nil, &hubtest.InvokeOptions{ConnectTimeout: 30 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status, string(res.Payload))
	fmt.Println("tunnelled:", tunnels.opened.Load() > 0)
	// Output:
	// 200 "pong through the proxy"
	// tunnelled: true
}

// connectProxy is the smallest HTTP proxy: it tunnels CONNECT requests.
type connectProxy struct{ opened atomic.Int32 }

func (p *connectProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		http.Error(w, "only CONNECT", http.StatusMethodNotAllowed)
		return
	}
	upstream, err := net.Dial("tcp", r.Host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer upstream.Close()
	downstream, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer downstream.Close()
	p.opened.Add(1)
	if _, err := downstream.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		return
	}
	copied := make(chan struct{})
	go func() { // joined below
		io.Copy(upstream, downstream)
		upstream.Close()
		close(copied)
	}()
	io.Copy(downstream, upstream)
	downstream.Close()
	<-copied
}
