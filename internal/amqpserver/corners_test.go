package amqpserver_test

// Issue 11's protocol corners, each as RabbitMQ 3.10.8 answers it (checked
// against it by test/rabbitcompare): login failure with and without the
// authentication_failure_close capability, heartbeats on a channel, the
// frame-order violations, update-secret, CR/LF in names, idempotent unbind.

import (
	"errors"
	"testing"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/sluicemq/sluice/internal/amqp"
	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

// startOkWrongPassword sends the protocol header and a start-ok with a
// wrong password and the given client properties.
func startOkWrongPassword(c *rawClient, props message.Table) {
	c.t.Helper()
	c.sendBytes(amqp.ProtocolHeader)
	expect[*amqp.ConnectionStart](c)
	c.send(0, &amqp.ConnectionStartOk{ClientProperties: props, Mechanism: "PLAIN", Response: "\x00guest\x00wrong", Locale: "en_US"})
}

func TestLoginFailureWithoutCapabilityClosesSocket(t *testing.T) {
	b := sluicetest.Start(t)
	c := dialRaw(t, b.Addr())
	startOkWrongPassword(c, message.Table{"product": "old client"})
	// AMQP 0-9-1: the server closes the socket without connection.close;
	// only a client with authentication_failure_close gets one.
	for {
		f, err := c.r.ReadFrame()
		if err != nil {
			break
		}
		if f.Type == amqp.FrameMethod {
			m, _ := amqp.ReadMethod(f.Payload)
			t.Fatalf("got %s, want the socket closed", m.Name())
		}
	}
	// amqp091-go does not advertise the capability: it sees the close as
	// bad credentials, as with RabbitMQ.
	for _, user := range []string{"guest", "nobody"} {
		if _, err := amqp091.Dial(b.URLFor(user, "wrong", "/")); !errors.Is(err, amqp091.ErrCredentials) {
			t.Fatalf("amqp091-go dial as %s with a wrong password: %v, want ErrCredentials", user, err)
		}
	}
}

func TestLoginFailureWithCapabilityAnswersAccessRefused(t *testing.T) {
	b := sluicetest.Start(t)
	c := dialRaw(t, b.Addr())
	startOkWrongPassword(c, message.Table{"capabilities": message.Table{"authentication_failure_close": true}})
	cl := c.expectConnectionClose(amqp.AccessRefused)
	want := "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile."
	if cl.ReplyText != want || cl.ClassId != 0 || cl.MethodId != 0 {
		t.Fatalf("close %q class %d method %d, want %q class 0 method 0", cl.ReplyText, cl.ClassId, cl.MethodId, want)
	}
}

func TestHeartbeatOnChannelIsUnexpectedFrame(t *testing.T) {
	b := sluicetest.Start(t)
	c := dialRaw(t, b.Addr())
	c.open()
	c.sendFrame(amqp.Frame{Type: amqp.FrameHeartbeat, Channel: 1})
	cl := c.expectConnectionClose(amqp.UnexpectedFrame)
	if want := "UNEXPECTED_FRAME - type 8, all octets = <<>>"; cl.ReplyText != want {
		t.Fatalf("close %q, want %q", cl.ReplyText, want)
	}
}

func TestFrameOrderViolationsAreUnexpectedFrame(t *testing.T) {
	publish := &amqp.BasicPublish{RoutingKey: "nowhere"}
	tests := []struct {
		name         string
		send         func(c *rawClient)
		text         string
		class, mthod uint16
	}{
		{"body without header", func(c *rawClient) {
			c.sendFrame(amqp.Frame{Type: amqp.FrameBody, Channel: 1, Payload: []byte("x")})
		}, "UNEXPECTED_FRAME - expected method frame, got non method frame instead", 0, 0},
		{"header without method", func(c *rawClient) { c.sendHeader(1, 1) },
			"UNEXPECTED_FRAME - expected method frame, got non method frame instead", 0, 0},
		{"method where header expected", func(c *rawClient) {
			c.send(1, publish)
			c.send(1, &amqp.BasicQos{})
		}, "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead", 60, 40},
		{"method where body expected", func(c *rawClient) {
			c.send(1, publish)
			c.sendHeader(1, 5)
			c.send(1, &amqp.BasicQos{})
		}, "UNEXPECTED_FRAME - expected content body, got non content body frame instead", 60, 40},
		{"header where body expected", func(c *rawClient) {
			c.send(1, publish)
			c.sendHeader(1, 5)
			c.sendHeader(1, 5)
		}, "UNEXPECTED_FRAME - expected content body, got non content body frame instead", 60, 40},
	}
	b := sluicetest.Start(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, b.Addr())
			c.open()
			tt.send(c)
			cl := c.expectConnectionClose(amqp.UnexpectedFrame)
			if cl.ReplyText != tt.text || cl.ClassId != tt.class || cl.MethodId != tt.mthod {
				t.Fatalf("close %q class %d method %d, want %q class %d method %d",
					cl.ReplyText, cl.ClassId, cl.MethodId, tt.text, tt.class, tt.mthod)
			}
		})
	}
}

func TestNamesStripCRLF(t *testing.T) {
	b := sluicetest.Start(t)
	ch := sluicetest.Channel(t, b.Dial(t))
	if err := ch.ExchangeDeclare("x\r\n1", "fanout", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("q\n1", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q.Name != "q1" {
		t.Fatalf("declare-ok names %q, want q1", q.Name)
	}
	if err := ch.ExchangeDeclarePassive("x\r1", "fanout", false, true, false, false, nil); err != nil {
		t.Fatalf("passive declare of the exchange: %v", err)
	}
	if _, err := ch.QueueDeclarePassive("q1\r", false, false, false, false, nil); err != nil {
		t.Fatalf("passive declare of the queue: %v", err)
	}
	if err := ch.QueueBind("\nq1", "", "x1\n", false, nil); err != nil {
		t.Fatalf("bind: %v", err)
	}
	publish(t, ch, "x1", "", false, amqp091.Publishing{Body: []byte("m")})
	if d, ok, err := ch.Get("q1", true); err != nil || !ok || string(d.Body) != "m" {
		t.Fatalf("get through the binding: %q %v %v", d.Body, ok, err)
	}
	if err := ch.QueueUnbind("q\r1", "", "x\n1", nil); err != nil {
		t.Fatalf("unbind: %v", err)
	}
	if _, err := ch.QueueDelete("q\r\n1", false, false, false); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := ch.ExchangeDelete("\rx1", false, false); err != nil {
		t.Fatalf("delete exchange: %v", err)
	}
	if _, err := ch.QueueDeclarePassive("q1", false, false, false, false, nil); err == nil {
		t.Fatal("queue q1 still there after delete of q\\r\\n1")
	}
}

func TestUnbindIsIdempotent(t *testing.T) {
	b := sluicetest.Start(t)
	conn := b.Dial(t)
	ch := sluicetest.Channel(t, conn)
	if err := ch.ExchangeDeclare("x", "direct", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("q", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ queue, exchange string }{{"q", "x"}, {"no-queue", "x"}, {"q", "no-exchange"}} {
		ch := sluicetest.Channel(t, conn)
		if err := ch.QueueUnbind(tt.queue, "k", tt.exchange, nil); err != nil {
			t.Errorf("unbind %s from %s: %v, want unbind-ok", tt.queue, tt.exchange, err)
		}
		if err := ch.ExchangeUnbind(tt.queue, "k", tt.exchange, false, nil); err != nil {
			t.Errorf("exchange.unbind %s from %s: %v, want unbind-ok", tt.queue, tt.exchange, err)
		}
	}
}
