// Package faultproxy is a TCP proxy for tests that sits between a client
// and a server on loopback and injects network faults on command: reset
// every connection, stop forwarding in one or both directions without
// closing (a black hole, or a stall that ends by itself), cut a stream
// after a number of bytes (in the middle of a packet), and refuse new
// connections for a while.
//
// It also simulates a link in each direction: a bandwidth (SetBandwidth)
// and a one-way latency (SetOneWayLatency, SetLatency) that compose as on
// a real link: each chunk of at most 4 KB is serialised at the bandwidth,
// one after the other, then propagated for the latency; bytes keep their
// order. What the link cannot send yet is held, up to MaxHeld per
// connection and direction; then the proxy stops reading, so the sender
// feels backpressure as its socket buffers fill. Every setting applies to
// live and new connections and can change at any time.
//
// The proxy copies bytes and never looks at them, so it is transparent to
// TLS: a client keeps its server name and trusted roots and only changes
// the port it dials.
package faultproxy
