package broker

import (
	"testing"

	"github.com/sluicemq/sluice/internal/store/memstore"
)

// A purge whose store write fails must say so and keep the messages, not
// log the error and answer purge-ok (issue 12: errors vanish).
func TestPurgeStoreFailureFailsThePurge(t *testing.T) {
	st := &countingStore{Store: memstore.New()}
	c := newClient(t, openBroker(t, st))
	c.declareQueue("dq", true, nil)
	for range 3 {
		c.publish("", "dq", "m", true)
	}
	st.fail.Store(true)
	n, err := c.ch.PurgeQueue("dq")
	if err == nil || CodeOf(err) != ResourceError {
		t.Fatalf("purge on a failing store = %d, %v; want a resource error", n, err)
	}
	st.fail.Store(false)
	got := 0
	for c.get("dq", true) != nil {
		got++
	}
	if got != 3 {
		t.Fatalf("%d messages left after the failed purge, want 3", got)
	}
}

// A write-behind batch (acks, floors) that fails must fence the broker,
// not be dropped after a log line (issue 12: errors vanish).
func TestWriteBehindFailureFences(t *testing.T) {
	st := &countingStore{Store: memstore.New()}
	b := openBroker(t, st)
	c := newClient(t, b)
	c.declareQueue("dq", true, nil)
	c.publish("", "dq", "m", true)
	d := c.get("dq", false)
	if d == nil {
		t.Fatal("no message")
	}
	st.fail.Store(true)
	if err := c.ch.Ack(d.DeliveryTag, false); err != nil {
		t.Fatal(err)
	}
	_ = b.env.pipe.Flush()
	st.fail.Store(false)
	if err := b.Fenced(); err == nil || CodeOf(err) != ResourceError {
		t.Fatalf("Fenced() after a failed write-behind batch = %v, want a resource error", err)
	}
}
