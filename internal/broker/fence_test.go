package broker

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/sluicemq/sluice/internal/store"
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

// notCommittedStore fails writes, while fail is set, as a replicated store
// does when its node loses a queue's lead mid-write.
type notCommittedStore struct {
	store.Store
	fail atomic.Bool
}

func (s *notCommittedStore) Apply(b *store.Batch, sync bool) error {
	if s.fail.Load() {
		return fmt.Errorf("replicate queue 1: %w: lead lost", store.ErrNotCommitted)
	}
	return s.Store.Apply(b, sync)
}

func (s *notCommittedStore) ApplyAsync(b *store.Batch) (func() error, error) {
	if s.fail.Load() {
		return nil, fmt.Errorf("replicate queue 1: %w: lead lost", store.ErrNotCommitted)
	}
	return s.Store.ApplyAsync(b)
}

// A replicated write that was not committed (the node lost the queue's
// lead) fails that write, not the node: fencing on it left a node that had
// led a quorum queue through a partition refusing every write until a
// restart (found by test/cluster's chaos run).
func TestNotCommittedWriteDoesNotFence(t *testing.T) {
	st := &notCommittedStore{Store: memstore.New()}
	b := openBroker(t, st)
	c := newClient(t, b)
	c.declareQueue("dq", true, nil)
	c.publish("", "dq", "before", true)
	d := c.get("dq", false)
	if d == nil {
		t.Fatal("no message")
	}
	st.fail.Store(true)
	done := make(chan error, 1)
	if _, err := c.ch.Publish(newMsg("", "dq", "lost", true), false, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil || !errors.Is(err, store.ErrNotCommitted) {
		t.Fatalf("publish whose write was not committed: %v, want an error wrapping ErrNotCommitted", err)
	}
	if err := c.ch.Ack(d.DeliveryTag, false); err != nil {
		t.Fatal(err)
	}
	_ = b.env.pipe.Flush()
	st.fail.Store(false)
	if err := b.Fenced(); err != nil {
		t.Fatalf("fenced after a write that was not committed: %v", err)
	}
	// The next writes go through: the failed batch's deferred changes
	// were not kept to fail them again.
	c.publish("", "dq", "after", true)
	if err := b.env.pipe.Flush(); err != nil {
		t.Fatalf("flush after the failure: %v", err)
	}
	if got := c.get("dq", true); got == nil || string(got.Body) != "after" {
		t.Fatalf("after the failed write got %v, want the message published after it", got)
	}
}
