package broker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/store"
	"github.com/sluicemq/sluice/internal/store/memstore"
	"github.com/sluicemq/sluice/internal/store/storetest"
)

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// An ack queued before a synced write (a confirmed publish) reaches the
// store no later than that write, and every ack follows its message's put.
// Floors never go back.
func TestAckOrderingUnderLoad(t *testing.T) {
	st := storetest.NewRecording(memstore.New())
	b := openBroker(t, st)
	pub := newClient(t, b)
	pub.declareQueue("q", true, nil)
	id := b.vhosts["/"].queues["q"].id
	const n = 2000
	cons := newClient(t, b)
	if err := cons.ch.Qos(0, 64, false); err != nil {
		t.Fatal(err)
	}
	cons.consume("q", false)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			pub.publish("", "q", fmt.Sprint(i), true)
		}
	})
	acked := 0
	deadline := time.Now().Add(20 * time.Second)
	for acked < n && time.Now().Before(deadline) {
		ds := cons.out.deliveries()
		for _, d := range ds[acked:] {
			if err := cons.ch.Ack(d.DeliveryTag, false); err != nil {
				t.Fatal(err)
			}
		}
		acked = len(ds)
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	if acked != n {
		t.Fatalf("acked %d of %d", acked, n)
	}
	// The last ack was queued before this synced declare.
	pub.declareQueue("q2", true, nil)
	lastAckApply, deletes := 0, 0
	putAt := map[uint64]int{}
	var floor uint64
	for i, o := range st.Ops() {
		if o.Op.Queue != id {
			continue
		}
		switch o.Op.Kind {
		case store.OpPutMessage:
			putAt[o.Op.Seq] = i
		case store.OpDeleteMessage:
			at, ok := putAt[o.Op.Seq]
			if !ok || at > i {
				t.Fatalf("ack of seq %d applied before its put", o.Op.Seq)
			}
			lastAckApply = o.Apply
			deletes++
		case store.OpSetFloor:
			// A floor move is the ack of everything below it.
			if o.Op.Seq < floor {
				t.Fatalf("floor went back from %d to %d", floor, o.Op.Seq)
			}
			if at, ok := putAt[o.Op.Seq-1]; o.Op.Seq > 1 && (!ok || at > i) {
				t.Fatalf("floor moved to %d before the put of seq %d", o.Op.Seq, o.Op.Seq-1)
			}
			if o.Op.Seq > floor {
				lastAckApply = o.Apply
			}
			floor = o.Op.Seq
		}
	}
	if floor != n+1 {
		t.Fatalf("floor %d after acking all, want %d", floor, n+1)
	}
	// Acked in order, every message fell below the floor as it was acked:
	// the floor moves are its deletes.
	if deletes != 0 {
		t.Errorf("%d point deletes of messages acked in order, want 0 (the floor covers them)", deletes)
	}
	// The declare of q2 was a synced apply after every ack was queued.
	var declareApply int
	for _, o := range st.Ops() {
		if o.Op.Kind == store.OpPutMeta && o.Sync && o.Apply > declareApply {
			declareApply = o.Apply
		}
	}
	if lastAckApply == 0 || lastAckApply > declareApply {
		t.Fatalf("last ack in apply %d, after the synced declare in apply %d", lastAckApply, declareApply)
	}
	if left := countMessages(t, st.Store, id); left != 0 {
		t.Fatalf("%d messages left in the store", left)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// slowGetStore makes reads of message records take delay once armed, as
// a cold read from a slow disk would.
type slowGetStore struct {
	store.Store
	armed atomic.Bool
	delay time.Duration
}

func (s *slowGetStore) Get(q store.QueueID, seq uint64) ([]byte, error) {
	if s.armed.Load() {
		time.Sleep(s.delay)
	}
	return s.Store.Get(q, seq)
}

// TestConfirmDoesNotWaitForDelivery: delivery is off the write path. A
// message for a consumer whose delivery needs a slow body read is
// confirmed once it is stored, not once that read is done: the read
// happens on the queue's dispatcher, after the confirm.
func TestConfirmDoesNotWaitForDelivery(t *testing.T) {
	const delay = 300 * time.Millisecond
	st := &slowGetStore{Store: memstore.New(), delay: delay}
	cfg := testConfig()
	cfg.BodyCacheBytes = 1 // no record fits: every delivery reads the store
	b, err := Open(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	c := newClient(t, b)
	c.declareQueue("q", true, nil)
	c.consume("q", false)
	st.armed.Store(true)
	start := time.Now()
	c.publish("", "q", "m", true) // waits for the confirm (done)
	confirmed := time.Since(start)
	ds := c.out.waitDeliveries(t, 1)
	delivered := time.Since(start)
	st.armed.Store(false)
	if string(ds[0].Body) != "m" {
		t.Fatalf("delivered %q", ds[0].Body)
	}
	if confirmed >= delay {
		t.Fatalf("the confirm took %v: it waited for the delivery's %v read", confirmed, delay)
	}
	if delivered < delay {
		t.Fatalf("delivered after %v, before the %v read could finish", delivered, delay)
	}
}
