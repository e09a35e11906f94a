package broker

import (
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/store/memstore"
)

// The counters follow a message through publish, get, nack, redelivery,
// rejection into a dead letter queue, expiry and an unroutable publish.
func TestMessageStats(t *testing.T) {
	clock := newFakeClock()
	b := openOn(t, memstore.New(), clock)
	c := newClient(t, b)
	dlq := c.declareQueue("dlq", false, nil)
	q := c.declareQueue("work", false, message.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
	ttl := c.declareQueue("short", false, message.Table{"x-message-ttl": int64(10)})

	for _, body := range []string{"a", "b"} {
		c.publish("", q, body, false)
	}
	c.publish("", ttl, "dies", false)
	if c.publish("", "nowhere", "lost", false) {
		t.Fatal("publish to a missing queue routed")
	}

	d := c.get(q, false) // a
	if err := c.ch.Ack(d.DeliveryTag, false); err != nil {
		t.Fatal(err)
	}
	d = c.get(q, false) // b
	if err := c.ch.Nack(d.DeliveryTag, false, true); err != nil {
		t.Fatal(err)
	}
	tag := c.consume(q, false)
	ds := c.out.waitDeliveries(t, 1) // b again, redelivered
	if !ds[0].Redelivered {
		t.Fatalf("delivery %+v not redelivered", ds[0])
	}
	if err := c.ch.Nack(ds[0].DeliveryTag, false, false); err != nil { // to dlq
		t.Fatal(err)
	}
	if err := c.ch.Cancel(tag); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { qi, _ := b.Queue("/", dlq); return qi.Ready == 1 })
	clock.advance(time.Second)
	if d := c.get(ttl, true); d != nil {
		t.Fatalf("get of an expired message = %q", d.Body)
	}
	if d := c.get(dlq, true); d == nil || string(d.Body) != "b" {
		t.Fatalf("get from dlq = %+v", d)
	}

	rejected := func(n uint64) (r [len(deadLetterReasons)]uint64) { r[0] = n; return r }
	tests := []struct {
		queue string
		want  MessageStats
	}{
		{q, MessageStats{Publish: 2, Get: 2, Deliver: 1, Redeliver: 1, Ack: 1, Nack: 2, DeadLettered: rejected(1)}},
		{dlq, MessageStats{Publish: 1, GetNoAck: 1}},
		{ttl, MessageStats{Publish: 1, Expired: 1, GetEmpty: 1}}, // the get found it expired
	}
	for _, tt := range tests {
		qi, err := b.Queue("/", tt.queue)
		if err != nil {
			t.Fatal(err)
		}
		if qi.Stats != tt.want {
			t.Errorf("queue %s stats\n got %+v\nwant %+v", tt.queue, qi.Stats, tt.want)
		}
	}
	want := MessageStats{Publish: 4, Get: 2, GetNoAck: 1, Deliver: 1, Redeliver: 1, Ack: 1, Nack: 2,
		Expired: 1, DeadLettered: rejected(1), DropUnroutable: 1, GetEmpty: 1}
	got := b.MessageStats()
	if got != want {
		t.Errorf("broker stats\n got %+v\nwant %+v", got, want)
	}
	if got.DeliverGet() != 4 || got.DeadLetteredTotal() != 1 {
		t.Errorf("DeliverGet %d, DeadLetteredTotal %d; want 4, 1", got.DeliverGet(), got.DeadLetteredTotal())
	}
	chs := c.conn.ChannelInfos()
	wantCh := MessageStats{Publish: 4, Get: 2, GetNoAck: 1, Deliver: 1, Redeliver: 1, Ack: 1, Nack: 2, DropUnroutable: 1, GetEmpty: 1}
	if len(chs) != 1 || chs[0].Stats != wantCh {
		t.Errorf("channel stats\n got %+v\nwant %+v", chs, wantCh)
	}
	x, err := b.Exchange("/", "")
	if err != nil {
		t.Fatal(err)
	}
	if x.PublishIn != 4 || x.PublishOut != 3 {
		t.Errorf("default exchange publish in/out = %d/%d, want 4/3", x.PublishIn, x.PublishOut)
	}
}

// Each way to die is counted under its reason, on the source queue.
func TestDeadLetterStatsByReason(t *testing.T) {
	clock := newFakeClock()
	b := openOn(t, memstore.New(), clock)
	c := newClient(t, b)
	dlq := c.declareQueue("dlq", false, nil)
	dl := func(more message.Table) message.Table {
		args := message.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq}
		for k, v := range more {
			args[k] = v
		}
		return args
	}
	maxlen := c.declareQueue("maxlen", false, dl(message.Table{"x-max-length": int64(1)}))
	rejectDLX := c.declareQueue("rejectdlx", false, dl(message.Table{"x-max-length": int64(1), "x-overflow": "reject-publish-dlx"}))
	ttl := c.declareQueue("ttl", false, dl(message.Table{"x-message-ttl": int64(10)}))
	limit := c.declareQueue("limit", false, dl(message.Table{"x-delivery-limit": int64(0)}))

	c.publish("", maxlen, "m1", false)
	c.publish("", maxlen, "m2", false) // drops m1 from the head
	c.publish("", rejectDLX, "r1", false)
	done := make(chan error, 1)
	if _, err := c.ch.Publish(newMsg("", rejectDLX, "r2", false), false, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	<-done // refused: r2 is dead-lettered without entering the queue
	c.publish("", ttl, "t1", false)
	c.publish("", limit, "l1", false)
	d := c.get(limit, false)
	if err := c.ch.Nack(d.DeliveryTag, false, true); err != nil { // past the limit at once
		t.Fatal(err)
	}
	clock.advance(time.Second)
	c.get(ttl, true) // finds t1 expired
	waitFor(t, func() bool { qi, _ := b.Queue("/", dlq); return qi.Ready == 4 })

	idx := func(reason string) int {
		for i, r := range DeadLetterReasons() {
			if r == reason {
				return i
			}
		}
		t.Fatalf("no reason %q", reason)
		return -1
	}
	tests := []struct {
		queue, reason string
	}{{maxlen, "maxlen"}, {rejectDLX, "maxlen"}, {ttl, "expired"}, {limit, "delivery_limit"}}
	for _, tt := range tests {
		qi, err := b.Queue("/", tt.queue)
		if err != nil {
			t.Fatal(err)
		}
		if n := qi.Stats.DeadLettered[idx(tt.reason)]; n != 1 || qi.Stats.DeadLetteredTotal() != 1 {
			t.Errorf("queue %s: dead-lettered %v, want 1 %s", tt.queue, qi.Stats.DeadLettered, tt.reason)
		}
	}
	all := b.MessageStats()
	if all.DeadLettered[idx("maxlen")] != 2 || all.DeadLettered[idx("expired")] != 1 ||
		all.DeadLettered[idx("delivery_limit")] != 1 || all.Expired != 1 {
		t.Errorf("broker stats %+v", all)
	}
}
