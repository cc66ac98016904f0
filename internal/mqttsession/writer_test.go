package mqttsession

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/internal/mqttwire"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/google/go-cmp/cmp"
)

const waitTimeout = 10 * time.Second

func publishPacket(topic string) *packets.PublishPacket {
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.TopicName = topic
	return p
}

// TestWriterKeepsEachCallersOrder: many goroutines writing at once all
// get their packets out, each in its own order.
func TestWriterKeepsEachCallersOrder(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	w := newWriter(client, waitTimeout, func(error) {})
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() { // owned by the test, joined below
			for j := range each {
				if err := w.write(t.Context(), publishPacket(fmt.Sprintf("%d/%d", i, j))); err != nil {
					t.Errorf("write: %v", err)
					return
				}
			}
		})
	}
	topics := readPackets(t, bufio.NewReader(server), writers*each)
	wg.Wait()
	next := make([]int, writers)
	for _, topic := range topics {
		var i, j int
		fmt.Sscanf(topic, "%d/%d", &i, &j)
		if j != next[i] {
			t.Fatalf("writer %d's packet %d came before %d", i, j, next[i])
		}
		next[i]++
	}
}

// blockedWriter returns a writer on one end of a pipe, the pipe's other
// end, and a channel told each time a write waits its turn.
func blockedWriter(t *testing.T, timeout time.Duration, failed func(error)) (*writer, net.Conn, <-chan struct{}) {
	t.Helper()
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	w := newWriter(client, timeout, failed)
	queued := make(chan struct{}, 8)
	w.queuedHook = func() { queued <- struct{}{} }
	return w, server, queued
}

// startWrite writes p on a goroutine of its own, and returns once the
// write is in progress: net.Pipe has no buffer, so the write holds until
// the other end has read all of it, and startWrite reads one byte. It
// returns a reader of the rest of the stream, that byte first.
func startWrite(t *testing.T, w *writer, server net.Conn, p packets.ControlPacket) (<-chan error, *bufio.Reader) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- w.write(context.Background(), p) }() // joined through done
	first := make([]byte, 1)
	if _, err := io.ReadFull(server, first); err != nil {
		t.Fatal(err)
	}
	return done, bufio.NewReader(io.MultiReader(bytes.NewReader(first), server))
}

// readPackets reads n PUBLISH packets from r and returns their topics.
func readPackets(t *testing.T, r *bufio.Reader, n int) []string {
	t.Helper()
	var topics []string
	for range n {
		p, err := mqttwire.ReadPacket(r, mqttwire.MaxPacketSize)
		if err != nil {
			t.Fatalf("read after %v: %v", topics, err)
		}
		topics = append(topics, p.(*packets.PublishPacket).TopicName)
	}
	return topics
}

// TestWriterDropsAQueuedPacketWhoseContextEnds: a packet still waiting for
// its turn when its context ends never goes out.
func TestWriterDropsAQueuedPacketWhoseContextEnds(t *testing.T) {
	w, server, queued := blockedWriter(t, waitTimeout, func(error) {})
	first, r := startWrite(t, w, server, publishPacket("first"))
	ctx, cancel := context.WithCancel(t.Context())
	stale := make(chan error, 1)
	go func() { stale <- w.write(ctx, publishPacket("stale")) }() // joined through stale
	<-queued
	cancel()
	if err := <-stale; !errors.Is(err, context.Canceled) {
		t.Errorf("queued write whose context ended = %v, want context.Canceled", err)
	}
	last := make(chan error, 1)
	go func() { last <- w.write(context.Background(), publishPacket("last")) }() // joined through last
	<-queued
	if diff := cmp.Diff([]string{"first", "last"}, readPackets(t, r, 2)); diff != "" {
		t.Errorf("written (-want +got):\n%s", diff)
	}
	for _, ch := range []<-chan error{first, last} {
		if err := <-ch; err != nil {
			t.Errorf("write: %v", err)
		}
	}
}

// TestWriterTimeoutFailsEveryWrite: a write the network does not take
// within the timeout fails, tells the session, and fails the writes
// queued behind it and every later one.
func TestWriterTimeoutFailsEveryWrite(t *testing.T) {
	failed := make(chan error, 1)
	w, server, queued := blockedWriter(t, 200*time.Millisecond, func(err error) { failed <- err })
	first, _ := startWrite(t, w, server, publishPacket("first"))
	waiting := make(chan error, 1)
	go func() { waiting <- w.write(context.Background(), publishPacket("queued")) }() // joined through waiting
	<-queued
	for _, ch := range []<-chan error{first, waiting} {
		if err := <-ch; !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("write on a network that takes nothing = %v, want os.ErrDeadlineExceeded", err)
		}
	}
	if err := <-failed; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the session was told %v", err)
	}
	if err := w.write(context.Background(), publishPacket("later")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("write after the failure = %v", err)
	}
}
