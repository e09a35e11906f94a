package broker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/store"
	"github.com/sluicemq/sluice/internal/store/memstore"
)

// getGate blocks every Get while its gate is shut, telling entered.
type getGate struct {
	store.Store
	mu      sync.Mutex
	gate    chan struct{} // nil: open
	entered chan struct{}
}

func (s *getGate) shut() {
	s.mu.Lock()
	s.gate, s.entered = make(chan struct{}), make(chan struct{}, 1)
	s.mu.Unlock()
}

func (s *getGate) release() {
	s.mu.Lock()
	if s.gate != nil {
		close(s.gate)
		s.gate = nil
	}
	s.mu.Unlock()
}

func (s *getGate) Get(q store.QueueID, seq uint64) ([]byte, error) {
	s.mu.Lock()
	gate, entered := s.gate, s.entered
	s.mu.Unlock()
	if gate != nil {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-gate
	}
	return s.Store.Get(q, seq)
}

// openUncached opens a broker on st whose body cache holds no record, so
// that every delivery reads the store.
func openUncached(t *testing.T, st store.Store) *Broker {
	t.Helper()
	cfg := testConfig()
	cfg.BodyCacheBytes = 1
	b, err := Open(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

// within fails the test unless fn returns within a (generous) bound.
func within(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not return while a delivery's record was being read", what)
	}
}

// fillAndBlock publishes n messages to durable queue q, shuts the gate and
// starts a consumer, returning once its delivery's read is blocked.
func fillAndBlock(t *testing.T, st *getGate, c *testClient, n int) {
	t.Helper()
	c.declareQueue("q", true, nil)
	for i := range n {
		c.publish("", "q", fmt.Sprint("m", i), true)
	}
	st.shut()
	t.Cleanup(st.release) // a failed test's broker closes
	within(t, "basic.consume", func() { c.consume("q", false) })
	select {
	case <-st.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the delivery never read the store")
	}
}

// TestDeliveryReadsOutsideTheQueueLock: while the records of a delivery
// are read from the store, the queue's lock is free — a publish to the
// queue is confirmed and its counts answer, the messages being read
// counted as ready — and once the read is done every message is
// delivered, in order.
func TestDeliveryReadsOutsideTheQueueLock(t *testing.T) {
	st := &getGate{Store: memstore.New()}
	c := newClient(t, openUncached(t, st))
	fillAndBlock(t, st, c, 10)
	other := c.channel(2)
	within(t, "a publish", func() { other.publish("", "q", "m10", true) })
	within(t, "queue.declare", func() {
		s, err := other.ch.DeclareQueue(QueueDecl{Name: "q", Passive: true})
		if err != nil || s.Messages != 11 {
			t.Errorf("declare-ok %+v %v, want 11 messages (10 being read)", s, err)
		}
	})
	st.release()
	ds := c.out.waitDeliveries(t, 11)
	for i, d := range ds {
		if string(d.Body) != fmt.Sprint("m", i) || d.DeliveryTag != uint64(i+1) {
			t.Fatalf("delivery %d: %q tag %d", i, d.Body, d.DeliveryTag)
		}
	}
}

// TestPurgeWaitsForARead: a purge during a delivery's read waits for it,
// so what was being read is delivered (the consumer had credit) and the
// purge counts only what was ready besides.
func TestPurgeWaitsForARead(t *testing.T) {
	st := &getGate{Store: memstore.New()}
	c := newClient(t, openUncached(t, st))
	if err := c.ch.Qos(0, 3, false); err != nil {
		t.Fatal(err)
	}
	fillAndBlock(t, st, c, 10)
	other := c.channel(2)
	purged := make(chan uint32, 1)
	go func() {
		n, err := other.ch.PurgeQueue("q")
		if err != nil {
			t.Error(err)
		}
		purged <- n
	}()
	st.release()
	if n := <-purged; n != 7 {
		t.Fatalf("purged %d, want the 7 not being read", n)
	}
	ds := c.out.waitDeliveries(t, 3)
	if len(ds) != 3 || string(ds[0].Body) != "m0" || string(ds[2].Body) != "m2" {
		t.Fatalf("deliveries %d, first %q", len(ds), ds[0].Body)
	}
	for _, d := range ds {
		if err := c.ch.Ack(d.DeliveryTag, false); err != nil {
			t.Fatal(err)
		}
	}
	if s, err := other.ch.DeclareQueue(QueueDecl{Name: "q", Passive: true}); err != nil || s.Messages != 0 {
		t.Fatalf("after the purge and the acks: %+v %v", s, err)
	}
}

// TestDeleteDuringARead: deleting a queue whose delivery is being read
// does not wait for the read, and the read delivers nothing afterwards.
func TestDeleteDuringARead(t *testing.T) {
	st := &getGate{Store: memstore.New()}
	b := openUncached(t, st)
	c := newClient(t, b)
	fillAndBlock(t, st, c, 5)
	q := b.vhosts["/"].queues["q"]
	other := c.channel(2)
	within(t, "queue.delete", func() {
		if n, err := other.ch.DeleteQueue("q", false, false); err != nil || n != 5 {
			t.Errorf("delete-ok %d %v, want 5 messages", n, err)
		}
	})
	st.release()
	deadline := time.Now().Add(30 * time.Second)
	for {
		q.mu.Lock()
		busy := q.readerOn
		q.mu.Unlock()
		if !busy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the reader did not end")
		}
		time.Sleep(time.Millisecond)
	}
	if ds := c.out.deliveries(); len(ds) != 0 {
		t.Fatalf("%d deliveries from a deleted queue", len(ds))
	}
}

// TestGetWaitsForARead: a basic.get during a consumer's read waits for
// it, so it does not overtake what is being read: the consumer gets m0,
// the get the next message, m1, and the delivered mark (every stored
// message below it went out) covers only those two.
func TestGetWaitsForARead(t *testing.T) {
	st := &getGate{Store: memstore.New()}
	b := openUncached(t, st)
	c := newClient(t, b)
	if err := c.ch.Qos(0, 1, false); err != nil {
		t.Fatal(err)
	}
	fillAndBlock(t, st, c, 3) // m0 (seq 1) is being read
	other := c.channel(2)
	got := make(chan *Delivery, 1)
	go func() { got <- other.get("q", false) }()
	st.release()
	if d := <-got; d == nil || string(d.Body) != "m1" {
		t.Fatalf("get %+v, want m1", d)
	}
	if ds := c.out.waitDeliveries(t, 1); string(ds[0].Body) != "m0" {
		t.Fatalf("consumer got %q, want m0", ds[0].Body)
	}
	q := b.vhosts["/"].queues["q"]
	q.mu.Lock()
	mark := q.mark
	q.mu.Unlock()
	if mark > 3 {
		t.Fatalf("delivered mark %d covers m2 (seq 3), which is still ready", mark)
	}
}

// TestGetReadsOutsideTheQueueLock: basic.get reads a record that is not
// cached with the queue's lock released too: a publish to the queue is
// confirmed meanwhile, and the get answers with the head of the queue.
func TestGetReadsOutsideTheQueueLock(t *testing.T) {
	st := &getGate{Store: memstore.New()}
	c := newClient(t, openUncached(t, st))
	c.declareQueue("q", true, nil)
	c.publish("", "q", "m0", true)
	st.shut()
	t.Cleanup(st.release)
	got := make(chan *Delivery, 1)
	go func() {
		d, err := c.ch.Get("q", false)
		if err != nil {
			t.Error(err)
		}
		got <- d
	}()
	select {
	case <-st.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the get never read the store")
	}
	other := c.channel(2)
	within(t, "a publish", func() { other.publish("", "q", "m1", true) })
	st.release()
	if d := <-got; d == nil || string(d.Body) != "m0" || d.MessageCount != 1 {
		t.Fatalf("get %+v, want m0 with 1 message left", d)
	}
}

// TestRemoteDeliveryKeepsStoredProperties: a delivery whose properties are
// still as stored crosses to another node with them (encodeDelivery), and
// one marked redelivered there gets x-delivery-count beside them.
func TestRemoteDeliveryKeepsStoredProperties(t *testing.T) {
	props := message.Properties{Flags: message.FlagHeaders | message.FlagContentType | message.FlagDeliveryMode,
		ContentType: "text/plain", DeliveryMode: 2, Headers: message.Table{"k": "v"}}
	raw, err := message.AppendProperties(nil, &props)
	if err != nil {
		t.Fatal(err)
	}
	d := &Delivery{DeliveryTag: 3, seq: 9, Exchange: "ex", RoutingKey: "rk", RawProperties: raw, Body: []byte("b")}
	w, err := encodeDelivery(nil, d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeDelivery(&reader{b: w})
	if err != nil {
		t.Fatal(err)
	}
	p, err := got.Props()
	if err != nil || got.seq != 9 || string(got.Body) != "b" || p.ContentType != "text/plain" || p.Headers["k"] != "v" || p.DeliveryMode != 2 {
		t.Fatalf("across nodes: %+v %+v %v", got, p, err)
	}
	markRedelivered(d)
	if p, err = d.Props(); err != nil || !d.Redelivered || p.Headers["x-delivery-count"] != int64(1) || p.Headers["k"] != "v" || p.ContentType != "text/plain" {
		t.Fatalf("marked redelivered: %+v %v", p, err)
	}
}

// TestLongConsumeThroughTheReader: a consumer acking each delivery as it
// comes drains a queue whose every record is read from the store, each
// message once and in order. The held seqs are rebuilt now and then
// (holdSeqLocked); the messages being read must survive the rebuild, or
// an ack meanwhile moves the floor past them and their records are
// range-deleted before they are delivered.
func TestLongConsumeThroughTheReader(t *testing.T) {
	const n, prefetch = 20000, 256
	c := newClient(t, openUncached(t, memstore.New()))
	c.declareQueue("q", true, nil)
	for i := range n {
		c.publish("", "q", fmt.Sprint("m", i), true)
	}
	if err := c.ch.Qos(0, prefetch, false); err != nil {
		t.Fatal(err)
	}
	c.consume("q", false)
	deadline := time.Now().Add(60 * time.Second)
	for got := 0; got < n; {
		ds := c.out.deliveries()
		if len(ds) == got {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d delivered", got, n)
			}
			time.Sleep(100 * time.Microsecond)
			continue
		}
		for ; got < len(ds); got++ {
			if string(ds[got].Body) != fmt.Sprint("m", got) {
				t.Fatalf("delivery %d: %q", got, ds[got].Body)
			}
			if err := c.ch.Ack(ds[got].DeliveryTag, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	if s, err := c.channel(2).ch.DeclareQueue(QueueDecl{Name: "q", Passive: true}); err != nil || s.Messages != 0 {
		t.Fatalf("after the drain: %+v %v", s, err)
	}
}
