package broker

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/store"
	"github.com/sluicemq/sluice/internal/store/memstore"
)

// lockWatchStore checks the rule of doc.go's lock order that no vhost or
// queue lock is held across an fsync: at every synced write it tries each
// vhost's and queue's lock for a while. A lock that stays taken all that
// time, while the writer is stopped in its fsync, is held across it.
type lockWatchStore struct {
	store.Store
	b        atomic.Pointer[Broker]
	mu       sync.Mutex
	held     []string
	checking atomic.Bool
}

const lockWatchPatience = 200 * time.Millisecond

func (s *lockWatchStore) Apply(b *store.Batch, sync bool) error {
	if sync {
		s.check()
	}
	return s.Store.Apply(b, sync)
}

func (s *lockWatchStore) ApplyAsync(b *store.Batch) (func() error, error) {
	wait, err := s.Store.ApplyAsync(b)
	if err != nil {
		return nil, err
	}
	return func() error { s.check(); return wait() }, nil
}

type tryLocker interface {
	TryLock() bool
	Unlock()
}

// free reports whether l could be taken within lockWatchPatience.
func free(l tryLocker) bool {
	for end := time.Now().Add(lockWatchPatience); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if l.TryLock() {
			l.Unlock()
			return true
		}
	}
	return false
}

func (s *lockWatchStore) check() {
	b := s.b.Load()
	if b == nil || !s.checking.CompareAndSwap(false, true) {
		return
	}
	defer s.checking.Store(false)
	b.vhMu.RLock()
	vhs := make([]*vhost, 0, len(b.vhosts))
	for _, vh := range b.vhosts {
		vhs = append(vhs, vh)
	}
	b.vhMu.RUnlock()
	for _, vh := range vhs {
		if !free(&vh.mu) {
			s.report(fmt.Sprintf("vhost %q", vh.name))
			continue
		}
		vh.mu.RLock()
		qs := make([]*queue, 0, len(vh.queues))
		for _, q := range vh.queues {
			qs = append(qs, q)
		}
		vh.mu.RUnlock()
		for _, q := range qs {
			if !free(&q.mu) {
				s.report(fmt.Sprintf("queue %q", q.name))
			}
		}
	}
}

func (s *lockWatchStore) report(what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held = append(s.held, what)
}

// TestNoLockHeldAcrossFsync: declares, binds, publishes, acks, purges,
// message edits and deletes, with durable queues and exchanges, never hold
// a vhost's or a queue's lock while their writes are synced.
func TestNoLockHeldAcrossFsync(t *testing.T) {
	st := &lockWatchStore{Store: memstore.New()}
	b := openBroker(t, st)
	st.b.Store(b)
	c := newClient(t, b)
	if err := c.ch.DeclareExchange(ExchangeDecl{Name: "dx", Type: kindDirect, Durable: true}); err != nil {
		t.Fatal(err)
	}
	c.declareQueue("a", true, nil)
	c.declareQueue("b", true, message.Table{"x-max-length": int32(5), "x-overflow": "reject-publish"})
	c.bind("dx", "a", "k", nil)
	c.bind("dx", "b", "k", nil)
	for i := range 5 {
		c.publish("dx", "k", fmt.Sprint(i), true)
	}
	refused := make(chan error, 1)
	if _, err := c.ch.Publish(newMsg("dx", "k", "over", true), false, func(err error) { refused <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-refused; err == nil {
		t.Fatal("a full reject-publish queue took a message")
	}
	d := c.get("a", false)
	if err := c.ch.Ack(d.DeliveryTag, false); err != nil {
		t.Fatal(err)
	}
	ids, _ := browseIDs(t, b, "a")
	if err := b.ReplaceMessage("/", "a", ids[0], newMsg("", "a", "edited", true), AnyVersion); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteMessage("/", "a", ids[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ch.PurgeQueue("a"); err != nil {
		t.Fatal(err)
	}
	if err := c.ch.UnbindQueue(Binding{Source: "dx", Destination: "b", Key: "k"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ch.DeleteQueue("b", false, false); err != nil {
		t.Fatal(err)
	}
	if err := c.ch.DeleteExchange("dx", false); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.held) > 0 {
		t.Fatalf("locks held across an fsync: %v", st.held)
	}
}
