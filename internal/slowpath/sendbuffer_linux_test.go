package slowpath

import (
	"context"
	"net"
	"syscall"
	"testing"
)

// TestSendBuffer checks that the socket gets the send buffer asked for:
// what SetWriteBuffer gives a socket, less than the kernel's default.
func TestSendBuffer(t *testing.T) {
	const sendBuffer = 6000 // no kernel's default
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	plain := func(ctx context.Context, network, address string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, address)
	}
	// connect returns the SO_SNDBUF of a connection dial opens.
	connect := func(dial func(context.Context, string, string) (net.Conn, error), set int) int {
		t.Helper()
		nc, err := dial(t.Context(), "tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		peer, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		peer.Close()
		tc := nc.(*net.TCPConn)
		if set > 0 {
			if err := tc.SetWriteBuffer(set); err != nil {
				t.Fatal(err)
			}
		}
		return sendBufferOf(t, tc)
	}
	got := connect(tcpDialer(sendBuffer), 0)
	want := connect(plain, sendBuffer)
	byDefault := connect(plain, 0)
	if got != want || got >= byDefault {
		t.Errorf("send buffer %d bytes, want %d (what SetWriteBuffer gives), below the default %d", got, want, byDefault)
	}
}

// sendBufferOf returns the SO_SNDBUF of c's socket.
func sendBufferOf(t *testing.T, c *net.TCPConn) int {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var size int
	var opErr error
	if err := raw.Control(func(fd uintptr) { size, opErr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF) }); err != nil {
		t.Fatal(err)
	}
	if opErr != nil {
		t.Fatal(opErr)
	}
	return size
}
