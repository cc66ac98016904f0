package amqp

import (
	"runtime"

	"net"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func cmpAny(want, got any) string {
	return cmp.Diff(want, got, cmpopts.EquateEmpty())
}

func cmpMessage(want, got *Message) string {
	return cmp.Diff(want, got, cmpopts.EquateEmpty())
}

func netPipe() (net.Conn, net.Conn) { return net.Pipe() }

type runtimeMem struct{ totalAlloc uint64 }

func (m *runtimeMem) read() {
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	m.totalAlloc = s.TotalAlloc
}
