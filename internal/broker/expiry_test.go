package broker

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluicemq/sluice/internal/message"
)

func readyLen(q *queue) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.ready.len()
}

// Issue 11 behaviour 4: a queue's head expires when it is due — now >=
// due — with no reader and no housekeeping round, and the timer re-arms
// for the next head.
func TestExpiryTimerAtDue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := openBroker(t, nil)
		c := newClient(t, b)
		c.declareQueue("q", false, message.Table{"x-message-ttl": int32(100)})
		q := b.vhosts["/"].queues["q"]
		c.publish("", "q", "a", false)
		time.Sleep(50 * time.Millisecond)
		c.publish("", "q", "b", false)
		time.Sleep(49 * time.Millisecond)
		synctest.Wait()
		if n := readyLen(q); n != 2 {
			t.Fatalf("%d ready 1 ms before the head is due, want 2", n)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if n := readyLen(q); n != 1 {
			t.Fatalf("%d ready when the head is due, want 1", n)
		}
		time.Sleep(50 * time.Millisecond)
		synctest.Wait()
		if n := readyLen(q); n != 0 {
			t.Fatalf("%d ready when the second is due, want 0", n)
		}
	})
}

// A message behind a longer-lived head waits for it (expiry is at the
// head, as RabbitMQ), then goes at once when the head leaves.
func TestExpiryTimerRearmsForEarlierHead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := openBroker(t, nil)
		c := newClient(t, b)
		c.declareQueue("q", false, nil)
		q := b.vhosts["/"].queues["q"]
		for _, exp := range []string{"500", "100"} {
			m := newMsg("", "q", exp, false)
			m.Properties.Flags |= message.FlagExpiration
			m.Properties.Expiration = exp
			c.publishMsg(m)
		}
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		if n := readyLen(q); n != 2 {
			t.Fatalf("%d ready, want 2: the short one waits behind the head", n)
		}
		if d := c.get("q", true); d == nil || string(d.Body) != "500" {
			t.Fatalf("got %+v, want the head", d)
		}
		synctest.Wait()
		if n := readyLen(q); n != 0 {
			t.Fatalf("%d ready after the head left, want 0: the next head was due", n)
		}
	})
}

// The publish path asks the expirer for a wake-up only when the head
// changes to an earlier due time: a backlog under one TTL holds one.
func TestExpiryOneWakePerQueue(t *testing.T) {
	b := openBroker(t, nil)
	c := newClient(t, b)
	c.declareQueue("q", false, message.Table{"x-message-ttl": int32(60_000)})
	for range 1000 {
		c.publish("", "q", "m", false)
	}
	x := b.env.expiry
	x.mu.Lock()
	n := len(x.items)
	x.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d wake-ups pending for one queue of 1000 messages, want 1", n)
	}
}
