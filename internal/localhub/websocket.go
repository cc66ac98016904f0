package localhub

import (
	"net/http"
	"strings"

	"github.com/coder/websocket"
	"github.com/directmethods/iotdevice/internal/ws"
)

// webSocketProtocols are the subprotocols the hub serves on
// /$iothub/websocket: MQTT and AMQP 1.0 ("AMQPWSB10").
var webSocketProtocols = []string{"mqtt", "AMQPWSB10"}

// serveWebSocket accepts a WebSocket, matching the subprotocol
// case-insensitively and echoing the client's spelling, and runs the
// protocol session inside this handler's goroutine.
func (h *Hub) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: webSocketProtocols})
	if err != nil {
		h.log.Debug("localhub: websocket handshake failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	// From here the MQTT or AMQP session bounds the connection (MQTT
	// allows connectTimeout for its CONNECT), not the HTTPS guard.
	requestGuard(r).lift()
	var peerChain certChain
	if r.TLS != nil {
		peerChain = chainOf(r.TLS.PeerCertificates)
	}
	switch strings.ToLower(c.Subprotocol()) {
	case "mqtt":
		conn := ws.NetConn(h.ctx, c)
		s := newMQTTSession(h, conn, "mqtt-ws", peerChain)
		if !h.track(s) {
			conn.Close()
			return
		}
		defer h.untrack(s)
		s.serve()
	case "amqpwsb10":
		conn := ws.NetConn(h.ctx, c)
		ac := newAMQPConn(h, conn, "amqp-ws", peerChain)
		if !h.track(ac) {
			conn.Close()
			return
		}
		defer h.untrack(ac)
		ac.serve()
	default:
		h.log.Info("localhub: websocket without a supported subprotocol", "remote", r.RemoteAddr)
		c.Close(websocket.StatusPolicyViolation, "unsupported subprotocol")
	}
}
