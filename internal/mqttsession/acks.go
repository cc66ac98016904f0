package mqttsession

import (
	"errors"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

var (
	// errTooManyInFlight is returned when all 65,535 packet identifiers
	// await an acknowledgement.
	errTooManyInFlight = errors.New("mqtt: every packet identifier awaits an acknowledgement")
	// ErrTooManyUnacknowledged is why a QoS 1 publish is given up while its
	// connection lives: MaxUnacknowledged later ones await their PUBACK
	// too.
	ErrTooManyUnacknowledged = errors.New("mqtt: no PUBACK while too many later messages awaited theirs")
)

// MaxUnacknowledged bounds the QoS 1 publishes that await their PUBACK on
// one connection. A server that acknowledges nothing costs the client at
// most this many small records (no payloads), and never holds a caller:
// the oldest is given up and reported instead.
const MaxUnacknowledged = 1024

// acks holds the packet identifiers that await an acknowledgement: a
// SUBACK, an UNSUBACK, or the PUBACK of a QoS 1 publish. It is guarded by
// Session.mu.
type acks struct {
	byID      map[uint16]*awaited
	next      uint16 // the identifier handed out last
	published int    // entries that are publishes
	seq       uint64 // counts publishes, to find the oldest
	ended     bool   // the connection has ended: no acknowledgement comes any more
}

// awaited is what one packet identifier waits for.
type awaited struct {
	kind      byte                       // packets.Puback, packets.Suback or packets.Unsuback
	got       chan packets.ControlPacket // (cap 1) for an exchange; nil for a publish
	onAck     func()                     // run on the reader as the acknowledgement of an exchange is read
	abandoned bool                       // the exchange gave up: its acknowledgement changes nothing

	// For a publish: what OnUnacknowledged is told (never its payload).
	token   any
	seq     uint64
	written bool // it went out: Publish returns nil, so a missing PUBACK is reported
	acked   bool // its PUBACK came before written was set
}

// add gives a a free packet identifier. Identifiers are handed out in
// turn, so one is reused only after 65,534 others: an acknowledgement that
// comes very late cannot complete a newer exchange.
func (a *acks) add(w *awaited) (uint16, error) {
	for range 1 << 16 {
		a.next++
		if a.next == 0 {
			a.next = 1
		}
		if _, used := a.byID[a.next]; used {
			continue
		}
		if w.kind == packets.Puback {
			a.seq++
			w.seq = a.seq
			a.published++
		}
		a.byID[a.next] = w
		return a.next, nil
	}
	return 0, errTooManyInFlight
}

func (a *acks) get(id uint16) *awaited { return a.byID[id] }

func (a *acks) remove(id uint16) {
	w, ok := a.byID[id]
	if !ok {
		return
	}
	delete(a.byID, id)
	if w.kind == packets.Puback {
		a.published--
	}
}

// evictOldest removes and returns the publish that went out first of
// those awaiting their PUBACK, or nil if none has gone out yet. It scans
// every entry, which only a server that stopped acknowledging makes happen.
func (a *acks) evictOldest() *awaited {
	var oldest *awaited
	var oldestID uint16
	for id, w := range a.byID {
		if w.kind == packets.Puback && w.written && (oldest == nil || w.seq < oldest.seq) {
			oldest, oldestID = w, id
		}
	}
	if oldest != nil {
		a.remove(oldestID)
	}
	return oldest
}

// takeUnacknowledged records that the connection has ended, and removes
// and returns every publish that went out and awaits its PUBACK. Publishes
// still being written stay, for their Publish to learn that they went out
// too late (see Session.written); the other entries are dropped.
func (a *acks) takeUnacknowledged() []*awaited {
	a.ended = true
	var out []*awaited
	for id, w := range a.byID {
		switch {
		case w.kind != packets.Puback:
			delete(a.byID, id)
		case w.written:
			out = append(out, w)
			a.remove(id)
		}
	}
	return out
}
