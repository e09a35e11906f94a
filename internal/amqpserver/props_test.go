package amqpserver_test

import (
	"bytes"
	"testing"

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
