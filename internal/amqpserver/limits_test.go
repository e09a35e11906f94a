package amqpserver_test

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/sluicemq/sluice/internal/amqpserver"
	"github.com/sluicemq/sluice/internal/broker"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

// dialRefused dials and wants 530 NOT_ALLOWED whose reason has want.
func dialRefused(t *testing.T, url, want string) {
	t.Helper()
	conn, err := amqp091.Dial(url)
	if err == nil {
		conn.Close()
		t.Fatalf("connected; want refusal %q", want)
	}
	ae := wantAMQPError(t, err, amqp091.NotAllowed)
	if !strings.Contains(ae.Reason, want) {
		t.Errorf("reason %q, want it to say %q", ae.Reason, want)
	}
}

// As RabbitMQ's connection_max: one connection over the node's limit is
// refused with a reason, and a slot that frees up can be taken again.
func TestMaxConnectionsRefusesAtOpen(t *testing.T) {
	b := sluicetest.Start(t, sluicetest.WithServerConfig(func(c *amqpserver.Config) { c.MaxConnections = 2 }))
	first := b.Dial(t)
	b.Dial(t)
	dialRefused(t, b.URL(), "node connection limit (2) is reached")
	first.Close()
	b.Dial(t) // the freed slot
}

// RabbitMQ's user limit max-connections and vhost limit max-connections.
func TestUserAndVHostConnectionLimits(t *testing.T) {
	b := sluicetest.Start(t)
	if err := b.Broker.SetLimit(broker.UserLimit, "guest", broker.LimitMaxConnections, 1); err != nil {
		t.Fatal(err)
	}
	c := b.Dial(t)
	dialRefused(t, b.URL(), "User connection limit (1) is reached")
	c.Close()
	c = b.Dial(t)
	c.Close()

	if err := b.Broker.DeleteLimit(broker.UserLimit, "guest", broker.LimitMaxConnections); err != nil {
		t.Fatal(err)
	}
	if err := b.Broker.SetLimit(broker.VHostLimit, "/", broker.LimitMaxConnections, 0); err != nil {
		t.Fatal(err)
	}
	dialRefused(t, b.URL(), "access to vhost '/' refused for user 'guest': connection limit (0) is reached")
	if err := b.Broker.SetLimit(broker.VHostLimit, "/", broker.LimitMaxConnections, -1); err != nil {
		t.Fatal(err)
	}
	b.Dial(t) // negative: no limit

	var be *broker.Error
	if err := b.Broker.SetLimit(broker.VHostLimit, "/", "max-channels", 5); !errors.As(err, &be) || be.Code != broker.InvalidArgument {
		t.Errorf("max-channels of a vhost: %v, want InvalidArgument", err)
	}
	if err := b.Broker.SetLimit(broker.UserLimit, "nobody", broker.LimitMaxConnections, 5); broker.CodeOf(err) != broker.NotFound {
		t.Errorf("limit of an unknown user: %v, want NotFound", err)
	}
}

// flakyListener fails its first accepts as a process out of descriptors
// does (EMFILE).
type flakyListener struct {
	net.Listener
	fails atomic.Int32
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return l.Listener.Accept()
}

// A failed accept does not stop the listener (the broker used to stop on
// EMFILE): it backs off and retries, as net/http does.
func TestAcceptErrorsBackOffAndRetry(t *testing.T) {
	b := sluicetest.Start(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &flakyListener{Listener: ln}
	fl.fails.Store(5)
	served := make(chan error, 1)
	go func() { served <- b.Server.Serve(fl) }()
	conn, err := amqp091.Dial("amqp://guest:guest@" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatalf("dial after failed accepts: %v", err)
	}
	conn.Close()
	if n := fl.fails.Load(); n >= 0 {
		t.Errorf("%d failures left; the listener did not meet them", n+1)
	}
	select {
	case err := <-served:
		t.Fatalf("Serve returned %v", err)
	default:
	}
	ln.Close()
	if err := <-served; err == nil {
		t.Error("Serve returned nil after its listener closed")
	}
}

// Sockets that never finish a handshake cannot exhaust descriptors under
// --max-connections: past twice the limit a new socket is closed at once.
func TestMaxConnectionsBoundsHandshakingSockets(t *testing.T) {
	b := sluicetest.Start(t, sluicetest.WithServerConfig(func(c *amqpserver.Config) { c.MaxConnections = 1 }))
	for range 2 { // sockets that stop after connection.start, held in their handshake
		nc, err := net.Dial("tcp", b.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if _, err := nc.Write([]byte("AMQP\x00\x00\x09\x01")); err != nil {
			t.Fatal(err)
		}
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := nc.Read(make([]byte, 7)); err != nil {
			t.Fatalf("no connection.start: %v", err)
		}
	}
	nc, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Read(make([]byte, 8)); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("third socket: read %v, want it closed at accept", err)
	}
}

// RabbitMQ's user limit max-channels counts a user's channels across its
// connections; one more closes the connection with 530.
func TestUserChannelLimit(t *testing.T) {
	b := sluicetest.Start(t)
	if err := b.Broker.SetLimit(broker.UserLimit, "guest", broker.LimitMaxChannels, 2); err != nil {
		t.Fatal(err)
	}
	first, second := b.Dial(t), b.Dial(t)
	ch := sluicetest.Channel(t, first)
	sluicetest.Channel(t, second)
	closed := second.NotifyClose(make(chan *amqp091.Error, 1))
	_, err := second.Channel()
	wantAMQPError(t, err, amqp091.NotAllowed)
	e := closedWith(t, closed, amqp091.NotAllowed)
	if !strings.Contains(e.Reason, "number of channels opened for user 'guest' has reached the maximum allowed user limit of (2)") {
		t.Errorf("reason %q", e.Reason)
	}
	ch.Close() // a slot frees up
	if _, err := first.Channel(); err != nil {
		t.Errorf("a channel after one closed: %v", err)
	}
}

// RabbitMQ's vhost limit max-queues: a declare over it is refused with 406
// (a channel error); existing queues may still be declared again.
func TestVHostQueueLimit(t *testing.T) {
	b, conn, ch := start(t)
	if _, err := ch.QueueDeclare("first", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Broker.SetLimit(broker.VHostLimit, "/", broker.LimitMaxQueues, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("first", false, false, false, false, nil); err != nil {
		t.Errorf("redeclare under the limit: %v", err)
	}
	_, err := ch.QueueDeclare("second", false, false, false, false, nil)
	ae := wantAMQPError(t, err, amqp091.PreconditionFailed)
	if ae.Reason != "PRECONDITION_FAILED - cannot declare queue 'second': queue limit in vhost '/' (1) is reached" {
		t.Errorf("reason %q", ae.Reason)
	}
	if conn.IsClosed() {
		t.Error("the connection closed; want a channel error")
	}
}
