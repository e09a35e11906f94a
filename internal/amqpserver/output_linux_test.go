package amqpserver_test

import (
	"bytes"
	"net"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"golang.org/x/sys/unix"

	"github.com/sluicemq/sluice/internal/amqp"
	"github.com/sluicemq/sluice/internal/amqpserver"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

// receivedQueued returns the bytes queued unread in nc's receive buffer.
func receivedQueued(t *testing.T, nc net.Conn) int {
	t.Helper()
	rc, err := nc.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var ierr error
	if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil {
		t.Fatal(err)
	}
	if ierr != nil {
		t.Fatal(ierr)
	}
	return n
}

// TestWriteTimeoutCountsFromLastProgress checks, end to end, that a
// consumer that stops reading (with the kernel's default socket buffers,
// which fill over seconds) is closed the write timeout after the last byte
// reached it: not sooner, and not after a second timeout because the
// write that stalled had moved bytes first, or the kernel let a few more
// through now and then (a 30 s timeout closed such clients after 50-55 s).
func TestWriteTimeoutCountsFromLastProgress(t *testing.T) {
	const timeout = 3 * time.Second
	b := sluicetest.Start(t, sluicetest.WithServerConfig(func(c *amqpserver.Config) {
		c.WriteTimeout = timeout
	}))
	pub := sluicetest.Channel(t, b.Dial(t))
	if _, err := pub.QueueDeclare("stall", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	before := len(b.Server.Connections())
	c := dialRaw(t, b.Addr())
	c.open()
	c.send(1, &amqp.BasicConsume{Queue: "stall", ConsumerTag: "stalled"})
	expect[*amqp.BasicConsumeOk](c)
	if n := len(b.Server.Connections()); n != before+1 {
		t.Fatalf("%d connections, want %d", n, before+1)
	}

	// 6 MB/s: the buffers of both ends fill in a few seconds.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		body := bytes.Repeat([]byte("x"), 64<<10)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if pub.Publish("", "stall", false, false, amqp091.Publishing{Body: body}) != nil {
				return
			}
		}
	}()
	queued := receivedQueued(t, c.nc)
	progress := time.Now()
	for deadline := time.Now().Add(60 * time.Second); len(b.Server.Connections()) > before; time.Sleep(5 * time.Millisecond) {
		if n := receivedQueued(t, c.nc); n != queued {
			queued, progress = n, time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatal("the stalled client is still open after 60 s")
		}
	}
	idle := time.Since(progress)
	t.Logf("closed %v after the last byte reached the client (%d bytes queued unread)", idle.Round(time.Millisecond), queued)
	if idle < timeout*3/4 || idle > timeout+timeout/2 {
		t.Fatalf("closed %v after the last byte reached the client, want about the write timeout %v", idle, timeout)
	}
}
