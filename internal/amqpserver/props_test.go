package amqpserver_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/sluicemq/sluice/internal/amqp"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

// TestPropertiesReachTheConsumerAsSent: the content header's property
// bytes a publisher sent — a headers table in an order the broker's
// encoder would not write — are what the consumer's basic.deliver and a
// basic.get carry, byte for byte, through a durable queue (the record on
// disk). A redelivery carries x-delivery-count, which the broker adds.
func TestPropertiesReachTheConsumerAsSent(t *testing.T) {
	b := sluicetest.Start(t)
	c := dialRaw(t, b.Addr())
	c.open()
	c.send(1, &amqp.QueueDeclare{Queue: "as-sent", Durable: true})
	expect[*amqp.QueueDeclareOk](c)
	props := []byte{0x30, 0x00, 0, 0, 0, 16, 1, 'z', 'S', 0, 0, 0, 1, '1', 1, 'a', 'S', 0, 0, 0, 1, '2', 2}
	header := append([]byte{0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5}, props...)
	publish := func() {
		c.send(1, &amqp.BasicPublish{RoutingKey: "as-sent"})
		c.sendFrame(amqp.Frame{Type: amqp.FrameHeader, Channel: 1, Payload: header})
		c.sendFrame(amqp.Frame{Type: amqp.FrameBody, Channel: 1, Payload: []byte("hello")})
	}
	// content reads the header and body frames after a delivery's method.
	content := func() (amqp.ContentHeader, []byte, []byte) {
		t.Helper()
		f, err := c.r.ReadFrame()
		if err != nil || f.Type != amqp.FrameHeader {
			t.Fatalf("frame %+v %v, want a content header", f, err)
		}
		h, err := amqp.ReadContentHeader(f.Payload)
		if err != nil {
			t.Fatal(err)
		}
		raw := append([]byte(nil), f.Payload[12:]...)
		body, err := c.r.ReadFrame()
		if err != nil || body.Type != amqp.FrameBody {
			t.Fatalf("frame %+v %v, want the body", body, err)
		}
		return h, raw, append([]byte(nil), body.Payload...)
	}

	publish()
	c.send(1, &amqp.BasicGet{Queue: "as-sent"})
	expect[*amqp.BasicGetOk](c)
	if _, raw, body := content(); !bytes.Equal(raw, props) || string(body) != "hello" {
		t.Fatalf("basic.get carried properties % x body %q, want % x", raw, body, props)
	}
	publish()
	c.send(1, &amqp.BasicConsume{Queue: "as-sent", ConsumerTag: "c"})
	expect[*amqp.BasicConsumeOk](c)
	d := expect[*amqp.BasicDeliver](c)
	if d.Redelivered { // the got message is still unacked: this is the second publish
		t.Fatal("a first delivery marked redelivered")
	}
	if _, raw, _ := content(); !bytes.Equal(raw, props) {
		t.Fatalf("basic.deliver carried properties % x, want % x", raw, props)
	}
	// Requeue everything: the redelivery carries x-delivery-count.
	c.send(1, &amqp.BasicCancel{ConsumerTag: "c"})
	expect[*amqp.BasicCancelOk](c)
	c.send(1, &amqp.BasicRecover{Requeue: true})
	expect[*amqp.BasicRecoverOk](c)
	c.send(1, &amqp.BasicGet{Queue: "as-sent"})
	if ok := expect[*amqp.BasicGetOk](c); !ok.Redelivered {
		t.Fatal("requeued message not redelivered")
	}
	h, _, _ := content()
	if h.Properties.Headers["x-delivery-count"] != int64(1) || h.Properties.Headers["z"] != "1" || h.Properties.DeliveryMode != 2 {
		t.Fatalf("redelivered properties %+v", h.Properties)
	}
}

// TestUndeliverableDeliveryIsTakenBack: a message whose content header
// does not fit a consumer's frame max is not sent to it; the broker takes
// the delivery back (rejected, so dead-lettered here) and the consumer's
// connection carries on with the next message.
func TestUndeliverableDeliveryIsTakenBack(t *testing.T) {
	b := sluicetest.Start(t)
	pub := sluicetest.Channel(t, b.Dial(t))
	if _, err := pub.QueueDeclare("dlq", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	args := amqp091.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"}
	if _, err := pub.QueueDeclare("big", true, false, false, false, args); err != nil {
		t.Fatal(err)
	}
	big := amqp091.Publishing{Headers: amqp091.Table{"h": strings.Repeat("x", 6000)}, Body: []byte("big")}
	for _, m := range []amqp091.Publishing{big, {Body: []byte("small")}} {
		if err := pub.PublishWithContext(context.Background(), "", "big", false, false, m); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := amqp091.DialConfig(b.URL(), amqp091.Config{FrameSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sub := sluicetest.Channel(t, conn)
	ds, err := sub.Consume("big", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-ds:
		if string(d.Body) != "small" {
			t.Fatalf("consumer got %q, want the small message (the big one cannot be framed for it)", d.Body)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, ok, err := pub.Get("dlq", true)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if string(m.Body) != "big" || len(m.Headers["h"].(string)) != 6000 {
				t.Fatalf("dead letter %q", m.Body)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the undeliverable message was not dead-lettered")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
