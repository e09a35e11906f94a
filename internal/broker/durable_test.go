package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/store"
	"github.com/sluicemq/sluice/internal/store/memstore"
)

// countingStore counts synced applies and can fail or slow them.
type countingStore struct {
	store.Store
	syncs, applies atomic.Int64
	fail           atomic.Bool
	syncDelay      time.Duration // stands in for an fsync

	appliedAsync atomic.Int64 // batches applied with ApplyAsync
	syncMu       sync.Mutex
	syncedAsync  int64 // of those, the ones a sync has covered
}

func (s *countingStore) Apply(b *store.Batch, sync bool) error {
	if s.fail.Load() {
		return errors.New("disk on fire")
	}
	s.applies.Add(1)
	if sync {
		s.syncs.Add(1)
		time.Sleep(s.syncDelay)
	}
	return s.Store.Apply(b, sync)
}

// ApplyAsync models a log device as Pebble drives it: a wait that finds no
// sync covering its batch syncs everything applied so far, once, so syncs
// counts device syncs however many batches they cover.
func (s *countingStore) ApplyAsync(b *store.Batch) (func() error, error) {
	if s.fail.Load() {
		return nil, errors.New("disk on fire")
	}
	s.applies.Add(1)
	wait, err := s.Store.ApplyAsync(b)
	if err != nil {
		return nil, err
	}
	mine := s.appliedAsync.Add(1)
	return func() error {
		s.syncMu.Lock()
		defer s.syncMu.Unlock()
		if s.syncedAsync < mine {
			upTo := s.appliedAsync.Load()
			time.Sleep(s.syncDelay)
			s.syncs.Add(1)
			s.syncedAsync = upTo
		}
		return wait()
	}, nil
}

func TestDurableRecovery(t *testing.T) {
	st := memstore.New()
	b1, err := Open(testConfig(), st)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, b1)
	if err := c.ch.DeclareExchange(ExchangeDecl{Name: "dx", Type: kindTopic, Durable: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.ch.DeclareExchange(ExchangeDecl{Name: "dx2", Type: kindFanout, Durable: true}); err != nil {
		t.Fatal(err)
	}
	c.declareExchange("tx", kindFanout, nil) // transient exchange
	c.declareQueue("dq", true, message.Table{"x-max-length": int32(100)})
	c.declareQueue("tq", false, nil)
	c.bind("dx", "dq", "a.#", nil)
	c.bind("dx", "tq", "a.#", nil)
	if err := c.ch.BindExchange(Binding{Source: "dx2", Destination: "dx", Key: "k"}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		body       string
		persistent bool
	}{{"p1", true}, {"t1", false}, {"p2", true}, {"p3", true}, {"p4", true}} {
		c.publish("dx", "a.b", m.body, m.persistent)
	}
	d1 := c.get("dq", false) // p1 stays unacked
	for range 2 {            // t1 and p2 are acked
		d := c.get("dq", false)
		if err := c.ch.Ack(d.DeliveryTag, false); err != nil {
			t.Fatal(err)
		}
	}
	// p3 is delivered and requeued: it comes back as redelivered too.
	d3 := c.get("dq", false)
	if err := c.ch.Nack(d3.DeliveryTag, false, true); err != nil {
		t.Fatal(err)
	}
	_ = d1
	tqID := b1.vhosts["/"].queues["tq"].id
	dqID := b1.vhosts["/"].queues["dq"].id
	if err := b1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	b2 := openBroker(t, st)
	c2 := newClient(t, b2)
	if _, err := c2.ch.DeclareQueue(QueueDecl{Name: "tq", Passive: true}); CodeOf(err) != NotFound {
		t.Errorf("non-durable queue survived: %v", err)
	}
	if err := c2.ch.DeclareExchange(ExchangeDecl{Name: "tx", Passive: true}); CodeOf(err) != NotFound {
		t.Errorf("non-durable exchange survived: %v", err)
	}
	if n := countMessages(t, st, tqID); n != 0 {
		t.Errorf("non-durable queue's %d messages left in the store", n)
	}
	// The durable queue keeps its arguments; a different value is refused.
	c2.declareQueue("dq", true, message.Table{"x-max-length": int64(100)})
	if _, err := c2.ch.DeclareQueue(QueueDecl{Name: "dq", Durable: true}); CodeOf(err) != PreconditionFailed {
		t.Errorf("redeclare without x-max-length after recovery: %v", err)
	}
	if b2.vhosts["/"].queues["dq"].id != dqID {
		t.Errorf("queue id changed")
	}
	var got []string
	for {
		d := c2.get("dq", true)
		if d == nil {
			break
		}
		got = append(got, fmt.Sprintf("%s:%v", d.Body, d.Redelivered))
	}
	if want := []string{"p1:true", "p3:true", "p4:false"}; !slices.Equal(got, want) {
		t.Errorf("recovered %v, want %v", got, want)
	}
	// Bindings came back: dx2 -> dx -> dq.
	c2.publish("dx2", "a.z", "x", true)
	c2.publish("", "dq", "direct", true)
	if d := c2.get("dq", true); d == nil || string(d.Body) != "x" {
		t.Errorf("e2e + topic binding not recovered: %+v", d)
	}
	if err := b2.Authenticate(Login{User: "guest", Password: "guest", Remote: "127.0.0.1:5000"}); err != nil {
		t.Errorf("default user after restart: %v", err)
	}
}

func countMessages(t *testing.T, st store.Store, id store.QueueID) int {
	t.Helper()
	n := 0
	if err := st.Scan(id, 0, func(uint64, []byte) bool { n++; return true }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAckFloorAdvances(t *testing.T) {
	b := openBroker(t, memstore.New())
	c := newClient(t, b)
	st := b.env.st // reads through the write-behind see queued acks
	c.declareQueue("dq", true, nil)
	for i := range 4 {
		c.publish("", "dq", fmt.Sprint(i), true)
	}
	id := c.ch.vh.queues["dq"].id
	var ds []*Delivery
	for range 4 {
		ds = append(ds, c.get("dq", false))
	}
	// Acking 2 and 3 leaves the floor at 1 (seq of "0").
	if err := c.ch.Ack(ds[2].DeliveryTag, false); err != nil {
		t.Fatal(err)
	}
	if f, _ := st.Floor(id); f > 1 {
		t.Fatalf("floor %d with seq 1 unacked", f)
	}
	if err := c.ch.Ack(ds[1].DeliveryTag, true); err != nil {
		t.Fatal(err)
	}
	if f, _ := st.Floor(id); f != 4 {
		t.Fatalf("floor %d, want 4 (seq of the last unacked)", f)
	}
	if n := countMessages(t, st, id); n != 1 {
		t.Fatalf("%d records left, want 1", n)
	}
}

func TestGroupCommit(t *testing.T) {
	st := &countingStore{Store: memstore.New(), syncDelay: 2 * time.Millisecond}
	b := openBroker(t, st)
	setup := newClient(t, b)
	setup.declareQueue("dq", true, nil)
	const publishers, each = 16, 25
	base := st.syncs.Load()
	var wg sync.WaitGroup
	for range publishers {
		c := newClient(t, b)
		wg.Go(func() {
			for range each {
				done := make(chan error, 1)
				if _, err := c.ch.Publish(newMsg("", "dq", "m", true), false, func(err error) { done <- err }); err != nil {
					t.Error(err)
					return
				}
				if err := <-done; err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	syncs := st.syncs.Load() - base
	if syncs >= publishers*each/4 {
		t.Fatalf("%d synced applies for %d persistent publishes: no group commit", syncs, publishers*each)
	}
	st2, _ := setup.ch.DeclareQueue(QueueDecl{Name: "dq", Passive: true})
	if st2.Messages != publishers*each {
		t.Fatalf("%d messages, want %d", st2.Messages, publishers*each)
	}
	t.Logf("%d publishes, %d synced applies", publishers*each, syncs)
}

func TestTransientPublishNotSynced(t *testing.T) {
	st := &countingStore{Store: memstore.New()}
	c := newClient(t, openBroker(t, st))
	c.declareQueue("dq", true, nil)
	c.declareQueue("tq", false, nil)
	base := st.syncs.Load()
	c.publish("", "dq", "transient", false)
	c.publish("", "tq", "persistent to transient queue", true)
	if n := st.syncs.Load() - base; n != 0 {
		t.Fatalf("%d synced applies for messages that need no fsync", n)
	}
	c.publish("", "dq", "persistent", true)
	if n := st.syncs.Load() - base; n != 1 {
		t.Fatalf("%d synced applies for one persistent message", n)
	}
}

func TestStoreFailureReportsToPublisher(t *testing.T) {
	st := &countingStore{Store: memstore.New()}
	c := newClient(t, openBroker(t, st))
	c.declareQueue("dq", true, nil)
	st.fail.Store(true)
	done := make(chan error, 1)
	routed, err := c.ch.Publish(newMsg("", "dq", "m", true), false, func(err error) { done <- err })
	if err != nil || !routed {
		t.Fatalf("publish: %v %v", routed, err)
	}
	// A store failure fences the broker (fence.go): the publisher hears
	// of it with a resource error (a nack), and so does every later one,
	// even once the store would take writes again.
	if err := <-done; err == nil || CodeOf(err) != ResourceError {
		t.Fatalf("done(%v), want a resource error", err)
	}
	st.fail.Store(false)
	if d := c.get("dq", true); d != nil {
		t.Fatalf("message that failed to store was delivered: %q", d.Body)
	}
	if err := c.b.Fenced(); err == nil {
		t.Fatal("the broker is not fenced after a store failure")
	}
	if _, err := c.ch.Publish(newMsg("", "dq", "later", true), false, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-done; CodeOf(err) != ResourceError {
		t.Fatalf("a publish after the fence: done(%v), want a resource error", err)
	}
	if _, err := c.ch.PurgeQueue("dq"); CodeOf(err) != ResourceError {
		t.Fatalf("a purge after the fence = %v, want a resource error", err)
	}
}

func TestBacklogReadFromStore(t *testing.T) {
	cfg := testConfig()
	cfg.BodyCacheBytes = 100 // room for a couple of records only
	b, err := Open(cfg, memstore.New())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	c := newClient(t, b)
	c.declareQueue("q", false, nil)
	for i := range 50 {
		c.publish("", "q", fmt.Sprintf("message %02d", i), false)
	}
	if n := b.env.cache.bytes(); n > 100 {
		t.Fatalf("cache holds %d bytes", n)
	}
	for i := range 50 {
		d := c.get("q", true)
		if want := fmt.Sprintf("message %02d", i); d == nil || string(d.Body) != want {
			t.Fatalf("get %d = %+v, want %q", i, d, want)
		}
	}
	if n := b.env.cache.bytes(); n != 0 {
		t.Fatalf("cache keeps %d bytes after the queue drained", n)
	}
}

func TestAuthenticate(t *testing.T) {
	b := openBroker(t, nil)
	tests := []struct {
		user, pass string
		loopback   bool
		ok         bool
	}{
		{"guest", "guest", true, true},
		{"guest", "guest", false, false},
		{"guest", "wrong", true, false},
		{"nobody", "guest", true, false},
	}
	for _, tt := range tests {
		remote := "192.0.2.1:5000"
		if tt.loopback {
			remote = "127.0.0.1:5000"
		}
		err := b.Authenticate(Login{User: tt.user, Password: tt.pass, Remote: remote})
		if (err == nil) != tt.ok || (err != nil && CodeOf(err) != AccessRefused) {
			t.Errorf("Authenticate(%q, %q, loopback=%v) = %v", tt.user, tt.pass, tt.loopback, err)
		}
	}
	_, err := b.Connect(ConnInfo{User: "guest", VHost: "x"})
	wantCode(t, err, NotAllowed, "vhost 'x' not found")
}
