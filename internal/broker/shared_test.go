package broker

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/records"
	"github.com/sluicemq/sluice/internal/store/memstore"
)

// drainBodies gets every message of queue without ack and returns the
// bodies.
func drainBodies(c *testClient, queue string) []string {
	var got []string
	for d := c.get(queue, true); d != nil; d = c.get(queue, true) {
		got = append(got, string(d.Body))
	}
	return got
}

// TestFanoutSharesBodies: a fanout to three durable queues stores one body
// that every queue reads, through an edit (which leaves the other queues'
// copy alone), a dead letter, a move, a purge, a queue delete and a
// restart; once no queue holds the message, housekeeping deletes its body.
func TestFanoutSharesBodies(t *testing.T) {
	st := memstore.New()
	b1, err := Open(testConfig(), st)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, b1)
	if err := c.ch.DeclareExchange(ExchangeDecl{Name: "fx", Type: kindFanout, Durable: true}); err != nil {
		t.Fatal(err)
	}
	c.declareQueue("a", true, nil)
	c.declareQueue("b", true, message.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dl"})
	c.declareQueue("c", true, nil)
	c.declareQueue("d", true, nil)
	c.declareQueue("t", false, nil)
	c.declareQueue("dl", true, nil)
	c.declareQueue("moved", true, nil)
	for _, q := range []string{"a", "b", "c", "d", "t"} {
		c.bind("fx", q, "", nil)
	}
	want := []string{"m0", "m1", "m2", "m3"}
	for _, body := range want {
		c.publish("fx", "", body, true)
	}
	c.publish("", "a", "alone", true) // one queue: written whole

	aID := b1.vhosts["/"].queues["a"].id
	shared := 0
	if err := st.Scan(aID, 0, func(_ uint64, rec []byte) bool {
		if records.IsShared(rec) {
			shared++
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if last, _ := st.LastBodyID(); shared != 4 || last != 4 {
		t.Fatalf("queue a holds %d shared records, last body %d; want 4 and 4", shared, last)
	}

	// An edit of m0 in a is a's alone.
	ids, _ := browseIDs(t, b1, "a")
	sm, err := b1.Message("/", "a", ids[0])
	if err != nil {
		t.Fatal(err)
	}
	sm.Message.Body = []byte("edited")
	if err := b1.ReplaceMessage("/", "a", ids[0], sm.Message, sm.Version); err != nil {
		t.Fatal(err)
	}
	// b dead-letters m0 to dl; d's m1 moves to moved; c is purged.
	d := c.get("b", false)
	if err := c.ch.Nack(d.DeliveryTag, false, false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for q, _ := b1.Queue("/", "dl"); q.Ready != 1; q, _ = b1.Queue("/", "dl") {
		if time.Now().After(deadline) {
			t.Fatal("m0 was not dead-lettered")
		}
		time.Sleep(5 * time.Millisecond)
	}
	dIDs, _ := browseIDs(t, b1, "d")
	if errs := moveTo(t, b1, "d", dIDs[1:2], "moved"); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if _, err := c.ch.PurgeQueue("c"); err != nil {
		t.Fatal(err)
	}
	if err := b1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	b2 := openBroker(t, st)
	c2 := newClient(t, b2)
	b2.housekeep()
	if got := drainBodies(c2, "a"); !slices.Equal(got, []string{"edited", "m1", "m2", "m3", "alone"}) {
		t.Fatalf("queue a after the restart: %v", got)
	}
	if got := drainBodies(c2, "b"); !slices.Equal(got, want[1:]) {
		t.Fatalf("queue b after the restart: %v", got)
	}
	if got := drainBodies(c2, "dl"); !slices.Equal(got, want[:1]) {
		t.Fatalf("dead letters after the restart: %v", got)
	}
	if got := drainBodies(c2, "moved"); !slices.Equal(got, want[1:2]) {
		t.Fatalf("moved after the restart: %v", got)
	}
	if got := drainBodies(c2, "c"); len(got) != 0 {
		t.Fatalf("purged queue c after the restart: %v", got)
	}
	// d still holds m0, m2, m3: their bodies stay.
	b2.housekeep()
	if last, _ := st.LastBodyID(); last != 4 {
		t.Fatalf("last body %d with queue d holding m3, want 4", last)
	}
	if _, err := c2.ch.DeleteQueue("d", false, false); err != nil {
		t.Fatal(err)
	}
	b2.housekeep()
	if last, err := st.LastBodyID(); last != 0 || err != nil {
		t.Fatalf("a body is left after every queue let go of it: last %d, %v", last, err)
	}
}

// TestSweepKeepsUpWithFanout: one housekeeping round deletes the bodies of
// more drained fanout messages than its rolling part looks at.
func TestSweepKeepsUpWithFanout(t *testing.T) {
	st := memstore.New()
	b := openBroker(t, st)
	c := newClient(t, b)
	c.declareExchange("fx", kindFanout, nil)
	c.declareQueue("a", true, nil)
	c.declareQueue("b", true, nil)
	c.bind("fx", "a", "", nil)
	c.bind("fx", "b", "", nil)
	const n = 3*sweepRolling + 10
	done := make(chan error, n)
	for i := range n {
		if _, err := c.ch.Publish(newMsg("fx", "", fmt.Sprint(i), true), false, func(err error) { done <- err }); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if last, _ := st.LastBodyID(); last != n {
		t.Fatalf("last body %d, want %d", last, n)
	}
	for _, q := range []string{"a", "b"} {
		if got := drainBodies(c, q); len(got) != n {
			t.Fatalf("queue %s: %d messages, want %d", q, len(got), n)
		}
	}
	b.housekeep()
	if last, _ := st.LastBodyID(); last != 0 {
		t.Fatalf("one round left bodies up to %d of %d drained", last, n)
	}
}
