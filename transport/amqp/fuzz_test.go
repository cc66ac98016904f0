package amqp

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	goamqp "github.com/Azure/go-amqp"
)

// FuzzParseRequest feeds encoded messages, as they come off the network,
// through go-amqp's decoder and parseRequest: neither may panic, and every
// request accepted must answer with the same correlation id.
func FuzzParseRequest(f *testing.F) {
	seeds := []*goamqp.Message{
		methodMessage(testUUID, "reboot", []byte(`{"delay":5}`)),
		methodMessage(testUUID, "m", []byte(`[1,`), []byte(`2]`)),
		methodMessage("rid", "m", []byte{}),
		methodMessage(uint64(9), "m", []byte("null")),
		methodMessage([]byte{1, 2}, "m", []byte("{}")),
		methodMessage(testUUID, int32(3), []byte("{}")),
		methodMessage(testUUID, "m"),
		methodMessage(nil, "m", []byte("{}")),
	}
	for _, m := range seeds {
		b, err := m.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x00, 0x53, 0x73})
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, ok := decodeMessage(b)
		if !ok {
			return
		}
		req, err := parseRequest(msg)
		if err != nil {
			if !errors.Is(err, errMalformedRequest) {
				t.Fatalf("parseRequest error %v does not wrap errMalformedRequest", err)
			}
			return
		}
		if req.Name == "" || req.RequestID == "" {
			t.Fatalf("accepted request without a name or id: %+v", req)
		}
		if !bytes.Equal(req.Payload, bytes.Join(msg.Data, nil)) {
			t.Fatalf("payload is not the data sections concatenated")
		}
		resp, err := newResponse(req, 200, nil)
		if err != nil {
			t.Fatalf("newResponse: %v", err)
		}
		if !reflect.DeepEqual(resp.Properties.CorrelationID, msg.Properties.CorrelationID) {
			t.Fatalf("response correlation id %#v, request %#v", resp.Properties.CorrelationID, msg.Properties.CorrelationID)
		}
	})
}

// decodeMessage runs go-amqp's message decoder. In v1.7.0 it panics on
// annotations whose map keys are not comparable (binary, list, map), as the
// seed 84b0d9d97df7a0d3 shows; such input counts as undecodable here, since
// that panic is go-amqp's and happens before parseRequest is reached.
func decodeMessage(b []byte) (msg *goamqp.Message, ok bool) {
	defer func() {
		if recover() != nil {
			msg, ok = nil, false
		}
	}()
	msg = new(goamqp.Message)
	if err := msg.UnmarshalBinary(b); err != nil {
		return nil, false
	}
	return msg, true
}
