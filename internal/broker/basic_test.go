package broker

import (
	"slices"
	"testing"
)

func TestPublishGetAck(t *testing.T) {
	c := newClient(t, openBroker(t, nil))
	q := c.declareQueue("q", false, nil)
	if !c.publish("", q, "one", false) {
		t.Fatal("publish to default exchange not routed")
	}
	c.publish("", q, "two", false)
	d := c.get(q, false)
	if d == nil || string(d.Body) != "one" || d.DeliveryTag != 1 || d.MessageCount != 1 || d.Redelivered {
		t.Fatalf("get = %+v", d)
	}
	if err := c.ch.Ack(d.DeliveryTag, false); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.ch.Ack(d.DeliveryTag, false), PreconditionFailed, "unknown delivery tag 1")
	d = c.get(q, true)
	if d == nil || string(d.Body) != "two" || d.DeliveryTag != 2 || d.MessageCount != 0 {
		t.Fatalf("get = %+v", d)
	}
	if d := c.get(q, false); d != nil {
		t.Fatalf("get on empty queue = %+v", d)
	}
}

func TestConsumeRoundRobin(t *testing.T) {
	b := openBroker(t, nil)
	c := newClient(t, b)
	c2 := c.channel(2)
	q := c.declareQueue("rr", false, nil)
	c.consume(q, true)
	c2.consume(q, true)
	for i := range 10 {
		c.publish("", q, string(rune('a'+i)), false)
	}
	d1 := c.out.waitDeliveries(t, 5)
	d2 := c2.out.waitDeliveries(t, 5)
	if got, want := bodies(d1), []string{"a", "c", "e", "g", "i"}; !slices.Equal(got, want) {
		t.Errorf("consumer 1 got %v, want %v", got, want)
	}
	if got, want := bodies(d2), []string{"b", "d", "f", "h", "j"}; !slices.Equal(got, want) {
		t.Errorf("consumer 2 got %v, want %v", got, want)
	}
}
