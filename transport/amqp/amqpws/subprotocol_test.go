package amqpws_test

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/directmethods/iotdevice/internal/testcert"
	"github.com/directmethods/iotdevice/internal/ws"
	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport"
	"github.com/directmethods/iotdevice/transport/amqp/amqpws"
)

// TestSubprotocolRefused dials a server that upgrades without choosing
// AMQPWSB10 and checks that Dial reports ws.ErrSubprotocol.
func TestSubprotocolRefused(t *testing.T) {
	cert, roots, err := testcert.Server()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil) // offers no subprotocol
		if err != nil {
			return
		}
		c.CloseNow()
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()
	_, portText, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := sas.NewKeyCredential("c2VjcmV0", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &transport.Config{
		HostName:        "hub.example",
		GatewayHostName: "127.0.0.1",
		Port:            port,
		DeviceID:        "dev-1",
		Credential:      cred,
		TLSConfig:       &tls.Config{RootCAs: roots},
		Proxy:           func(*url.URL) (*url.URL, error) { return nil, nil },
	}
	c, err := amqpws.NewDialer(nil).Dial(testContext(t), cfg)
	if err == nil {
		c.Close()
		t.Fatal("Dial succeeded without the AMQPWSB10 subprotocol")
	}
	if !errors.Is(err, ws.ErrSubprotocol) {
		t.Errorf("Dial error = %v, want ws.ErrSubprotocol in the chain", err)
	}
}
