package amqpserver_test

import (
	"bytes"
	"net"
	"sync/atomic"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/sluicemq/sluice/internal/amqp"
	"github.com/sluicemq/sluice/internal/amqpserver"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

// stalledConsumer opens a raw connection that consumes queue with manual
// acks and no prefetch limit, then never reads again.
func stalledConsumer(t *testing.T, addr, queue string) *rawClient {
	t.Helper()
	c := dialRaw(t, addr)
	if tc, ok := c.nc.(*net.TCPConn); ok {
		tc.SetReadBuffer(4096) // fill the socket soon
	}
	c.open()
	c.send(1, &amqp.BasicConsume{Queue: queue, ConsumerTag: "stalled"})
	expect[*amqp.BasicConsumeOk](c)
	return c
}

func publishN(t *testing.T, ch *amqp091.Channel, queue string, n, size int) {
	t.Helper()
	body := bytes.Repeat([]byte("x"), size)
	for range n {
		if err := ch.Publish("", queue, false, false, amqp091.Publishing{Body: body}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStalledConsumerLeavesMessagesToOthers checks that a consumer with
// no prefetch limit that stops reading its socket takes no more than its
// connection's output bound: the rest stay ready and another consumer of
// the queue gets them (issue 10, finding 16).
func TestStalledConsumerLeavesMessagesToOthers(t *testing.T) {
	b := sluicetest.Start(t)
	pub := sluicetest.Channel(t, b.Dial(t))
	if _, err := pub.QueueDeclare("shared", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	stalledConsumer(t, b.Addr(), "shared")

	ch := sluicetest.Channel(t, b.Dial(t))
	deliveries, err := ch.Consume("shared", "reader", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got atomic.Int64
	go func() {
		for d := range deliveries {
			d.Ack(false)
			got.Add(1)
		}
	}()
	const n, size = 1000, 32 << 10
	publishN(t, pub, "shared", n, size)
	// The stalled consumer holds at most the output bound (1 MiB) plus what
	// the kernel's socket buffers took: well under a third of the 32 MB.
	const want = n * 7 / 10
	for deadline := time.Now().Add(15 * time.Second); got.Load() < want; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the reading consumer got %d of %d messages, want at least %d", got.Load(), n, want)
		}
	}
}

// TestStalledConsumerOfBacklogLeavesMessagesToOthers: the same when the
// backlog is there before the stalled consumer attaches. Deliveries made
// while basic.consume is set up (held until consume-ok is queued) count
// against the output bound too; they were not counted, and one such
// consumer of a 1.4 GB backlog took it all into memory.
func TestStalledConsumerOfBacklogLeavesMessagesToOthers(t *testing.T) {
	b := sluicetest.Start(t)
	pub := sluicetest.Channel(t, b.Dial(t))
	if _, err := pub.QueueDeclare("backlog", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	const n, size = 1000, 32 << 10
	publishN(t, pub, "backlog", n, size)
	if err := pub.Confirm(false); err != nil { // a round trip: the backlog is in
		t.Fatal(err)
	}
	stalledConsumer(t, b.Addr(), "backlog")

	ch := sluicetest.Channel(t, b.Dial(t))
	deliveries, err := ch.Consume("backlog", "reader", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got atomic.Int64
	go func() {
		for d := range deliveries {
			d.Ack(false)
			got.Add(1)
		}
	}()
	const want = n * 7 / 10
	for deadline := time.Now().Add(15 * time.Second); got.Load() < want; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the reading consumer got %d of %d messages, want at least %d", got.Load(), n, want)
		}
	}
}

// TestWriteTimeoutClosesStalledClient checks that a client whose socket
// accepts nothing for the write timeout is closed even though it keeps
// sending heartbeats (issue 10, finding 16).
func TestWriteTimeoutClosesStalledClient(t *testing.T) {
	b := sluicetest.Start(t, sluicetest.WithServerConfig(func(c *amqpserver.Config) {
		c.WriteTimeout = 500 * time.Millisecond
	}))
	pub := sluicetest.Channel(t, b.Dial(t))
	if _, err := pub.QueueDeclare("stall", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	c := stalledConsumer(t, b.Addr(), "stall")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		hb := amqp.Frame{Type: amqp.FrameHeartbeat}
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if c.w.WriteFrame(hb) != nil || c.w.Flush() != nil {
				return
			}
		}
	}()
	publishN(t, pub, "stall", 400, 64<<10)
	for deadline := time.Now().Add(10 * time.Second); len(b.Server.Connections()) > 1; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want the stalled one closed", len(b.Server.Connections()))
		}
	}
}

// TestBodiesInProgressBounded checks that body bytes of unfinished
// publishes are counted as they arrive and that, past Config.BodyMemory,
// a connection in the middle of a body is not read (issue 10, findings
// 18 and 19); a client that resets is let go and its bytes uncounted.
func TestBodiesInProgressBounded(t *testing.T) {
	const budget = 1 << 20
	b := sluicetest.Start(t, sluicetest.WithServerConfig(func(c *amqpserver.Config) { c.BodyMemory = budget }))
	c := dialRaw(t, b.Addr())
	c.open()
	for id := uint16(2); id <= 4; id++ {
		c.send(id, &amqp.ChannelOpen{})
		expect[*amqp.ChannelOpenOk](c)
	}
	// Announced bodies reserve nothing.
	for id := uint16(1); id <= 4; id++ {
		c.send(id, &amqp.BasicPublish{RoutingKey: "nowhere"})
		c.sendHeader(id, 64<<20)
	}
	time.Sleep(50 * time.Millisecond)
	if n := b.Server.PartialBodyBytes(); n != 0 {
		t.Fatalf("%d body bytes counted before any arrived", n)
	}
	piece := make([]byte, 64<<10)
	c.nc.SetWriteDeadline(time.Now().Add(2 * time.Second))
	sent := 0
	for sent < 16<<20 {
		f := amqp.Frame{Type: amqp.FrameBody, Channel: uint16(1 + sent/len(piece)%4), Payload: piece}
		if c.w.WriteFrame(f) != nil || c.w.Flush() != nil {
			break
		}
		sent += len(piece)
	}
	time.Sleep(100 * time.Millisecond)
	if n := b.Server.PartialBodyBytes(); n == 0 || n > budget+int64(len(piece)) {
		t.Fatalf("%d body bytes in progress after %d sent, want some and at most %d", n, sent, budget+len(piece))
	}
	c.nc.(*net.TCPConn).SetLinger(0)
	c.nc.Close()
	for deadline := time.Now().Add(5 * time.Second); b.Server.PartialBodyBytes() != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d body bytes still counted after the client left", b.Server.PartialBodyBytes())
		}
	}
}

// TestBodiesInProgressPokeTheMemoryAlarm checks that bodies arriving poke
// the memory alarm once per sixteenth of Config.BodyMemory they add, so
// that it looks as they grow rather than at its next tick (a client
// filled 300 MiB between two ticks).
func TestBodiesInProgressPokeTheMemoryAlarm(t *testing.T) {
	const budget = 16 << 20
	var pokes atomic.Int64
	b := sluicetest.Start(t, sluicetest.WithServerConfig(func(c *amqpserver.Config) {
		c.BodyMemory = budget
		c.MemoryPoke = func() { pokes.Add(1) }
	}))
	c := dialRaw(t, b.Addr())
	c.open()
	c.send(1, &amqp.BasicPublish{RoutingKey: "nowhere"})
	c.sendHeader(1, 64<<20)
	piece := make([]byte, 64<<10)
	const sent = 8 << 20 // eight sixteenths
	for range sent / len(piece) {
		c.sendFrame(amqp.Frame{Type: amqp.FrameBody, Channel: 1, Payload: piece})
	}
	for deadline := time.Now().Add(10 * time.Second); b.Server.PartialBodyBytes() < sent; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d body bytes in progress, want %d", b.Server.PartialBodyBytes(), sent)
		}
	}
	if got := pokes.Load(); got != 8 {
		t.Fatalf("%d pokes for %d body bytes in progress, want one per %d", got, sent, budget/16)
	}
}
