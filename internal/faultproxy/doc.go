// Package faultproxy is a TCP proxy for tests that sits between a client
// and a server on loopback and injects network faults on command: reset
// every connection, stop forwarding in one or both directions without
// closing (a black hole), add latency, cut a stream after a number of
// bytes (in the middle of a packet), and refuse new connections for a
// while.
//
// The proxy copies bytes and never looks at them, so it is transparent to
// TLS: a client keeps its server name and trusted roots and only changes
// the port it dials.
package faultproxy
