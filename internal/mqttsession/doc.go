// Package mqttsession is the MQTT 3.1.1 client session that the device
// client's method transport (transport/mqtt) and the provisioning client
// (device/provisioning) both ride: the CONNECT handshake, subscriptions,
// publishing with or without acknowledgement, the keep-alive, and an
// ordered stream of the server's PUBLISH packets, on paho's packet codec.
// It knows nothing of IoT Hub's topics; its users do.
//
// # Behaviour
//
// One goroutine reads the network connection, in order, and hands each
// PUBLISH to Config.OnPublish before it reads the next packet. Writes have
// no goroutine of their own: the caller that finds no write in progress
// writes its packet, and those queued meanwhile, and hands the writing on
// once its own is out (see writer). Every 16 KB written must be taken by
// the network within the ping timeout. A PINGREQ goes once per keep-alive
// whatever the traffic, and its PINGRESP must come within the ping timeout
// of the PINGREQ being written (see pinger).
//
// Publish returns once its packet is written; at QoS 1 the PUBACK is
// awaited apart, at most MaxUnacknowledged of them, and each one that does
// not come (given up beyond the bound, or still missing when the
// connection ends) is reported once through Config.OnUnacknowledged. Only
// an acknowledgement of the awaited type completes an exchange; any other
// is ignored.
//
// # Concurrency
//
// Subscribe, Unsubscribe, Publish and Close may be called from any
// goroutine. OnPublish, and the onAck function of Unsubscribe, run on the
// reader goroutine and must not block: they may call Post, which never
// does. OnFail runs once, on whichever goroutine noticed the failure.
// Close joins every goroutine the session started.
package mqttsession
