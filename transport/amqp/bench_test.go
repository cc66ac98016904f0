package amqp

import (
	"bytes"
	"testing"

	goamqp "github.com/Azure/go-amqp"
)

var benchPayload = bytes.Repeat([]byte(`{"k":"v"},`), 100)

// BenchmarkParseRequest decodes a request as it arrives and converts it.
func BenchmarkParseRequest(b *testing.B) {
	wire, err := methodMessage(testUUID, "reboot", benchPayload).MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		var msg goamqp.Message
		if err := msg.UnmarshalBinary(wire); err != nil {
			b.Fatal(err)
		}
		if _, err := parseRequest(&msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewResponse builds and encodes a response.
func BenchmarkNewResponse(b *testing.B) {
	msg := methodMessage(testUUID, "reboot", benchPayload)
	req, err := parseRequest(msg)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(benchPayload)))
	b.ReportAllocs()
	for b.Loop() {
		resp, err := newResponse(req, 200, benchPayload)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := resp.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
}
