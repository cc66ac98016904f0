package mqtt

import (
	"errors"

	"github.com/directmethods/iotdevice/transport"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

var (
	// errTooManyInFlight is returned when all 65,535 packet identifiers
	// await an acknowledgement.
	errTooManyInFlight = errors.New("mqtt: every packet identifier awaits an acknowledgement")
	// errTooManyUnacknowledged is why an answer is given up while its
	// connection lives: maxUnacknowledged later answers await their PUBACK
	// too.
	errTooManyUnacknowledged = errors.New("no PUBACK while too many later answers awaited theirs")
)

// maxUnacknowledged bounds the answers that await their PUBACK on one
// connection. A hub that acknowledges nothing costs the device at most
// this many small records (no payloads), and never a handler slot: the
// oldest answer is given up and reported lost instead.
const maxUnacknowledged = 1024

// acks holds the packet identifiers that await an acknowledgement: a
// SUBACK, an UNSUBACK, or the PUBACK of an answer. It is guarded by
// conn.mu.
type acks struct {
	byID    map[uint16]*awaited
	next    uint16 // the identifier handed out last
	answers int    // entries that are answers
	seq     uint64 // counts answers, to find the oldest
	ended   bool   // the connection has ended: no acknowledgement comes any more
}

// awaited is what one packet identifier waits for.
type awaited struct {
	kind      byte                       // packets.Puback, packets.Suback or packets.Unsuback
	got       chan packets.ControlPacket // (cap 1) for an exchange; nil for an answer
	abandoned bool                       // the exchange gave up: its acknowledgement changes nothing

	// For an answer: enough to report it, without its payload.
	req     *transport.MethodRequest
	status  int
	seq     uint64
	written bool // it went out: Respond returns nil, so a loss is reported
	acked   bool // its PUBACK came before written was set
}

func newAcks() acks { return acks{byID: make(map[uint16]*awaited)} }

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
			w.req = &transport.MethodRequest{Name: w.req.Name, RequestID: w.req.RequestID, Handle: w.req.Handle}
			a.answers++
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
		a.answers--
	}
}

// evictOldestAnswer removes and returns the answer that went out first of
// those awaiting their PUBACK, or nil if none has gone out yet. It scans
// every entry, which only a hub that stopped acknowledging makes happen.
func (a *acks) evictOldestAnswer() *awaited {
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

// takeAnswers records that the connection has ended, and removes and
// returns every answer that went out and awaits its PUBACK. Answers still
// being written stay, for their Respond to learn that they went out too
// late (see conn.written); the other entries are dropped.
func (a *acks) takeAnswers() []*awaited {
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

// recentIDs remembers the request ids of the last QoS 1 requests of a
// connection, to recognise a redelivery. IoT Hub sends requests at QoS 0,
// so this only guards against a session that holds requests at QoS 1.
type recentIDs struct {
	ids  [64]string
	next int
}

// add records id and reports whether it is new.
func (r *recentIDs) add(id string) bool {
	for _, seen := range r.ids {
		if seen == id && id != "" {
			return false
		}
	}
	r.ids[r.next] = id
	r.next = (r.next + 1) % len(r.ids)
	return true
}
