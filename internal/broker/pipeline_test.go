package broker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/store"
	"github.com/sluicemq/sluice/internal/store/memstore"
)

// appliedOp is one op as the store received it: in which apply, synced or
// not.
type appliedOp struct {
	apply int
	sync  bool
	op    store.Op
}

// recordingStore logs every op applied, in order, and can hold applies
// until released.
type recordingStore struct {
	store.Store
	mu    sync.Mutex
	log   []appliedOp
	n     int
	hold  chan struct{} // when set, an apply waits for it to be closed
	entry chan struct{} // told (non-blocking) when an apply starts
}

func newRecordingStore() *recordingStore {
	return &recordingStore{Store: memstore.New(), entry: make(chan struct{}, 1)}
}

func (s *recordingStore) record(b *store.Batch, sync bool) {
	select {
	case s.entry <- struct{}{}:
	default:
	}
	s.mu.Lock()
	hold := s.hold
	s.mu.Unlock()
	if hold != nil {
		<-hold
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	for _, op := range b.Ops {
		s.log = append(s.log, appliedOp{s.n, sync, op})
	}
}

func (s *recordingStore) Apply(b *store.Batch, sync bool) error {
	s.record(b, sync)
	return s.Store.Apply(b, sync)
}

func (s *recordingStore) ApplyAsync(b *store.Batch) (func() error, error) {
	s.record(b, true)
	return s.Store.ApplyAsync(b)
}

func (s *recordingStore) ops() []appliedOp {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

func (s *recordingStore) applies() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// An ack queued before a synced write (a confirmed publish) reaches the
// store no later than that write, and every ack follows its message's put.
// Floors never go back.
func TestAckOrderingUnderLoad(t *testing.T) {
	st := newRecordingStore()
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
	lastAckApply := 0
	putAt := map[uint64]int{}
	var floor uint64
	for i, o := range st.ops() {
		if o.op.Queue != id {
			continue
		}
		switch o.op.Kind {
		case store.OpPutMessage:
			putAt[o.op.Seq] = i
		case store.OpDeleteMessage:
			at, ok := putAt[o.op.Seq]
			if !ok || at > i {
				t.Fatalf("ack of seq %d applied before its put", o.op.Seq)
			}
			lastAckApply = o.apply
		case store.OpSetFloor:
			if o.op.Seq < floor {
				t.Fatalf("floor went back from %d to %d", floor, o.op.Seq)
			}
			floor = o.op.Seq
		}
	}
	if floor != n+1 {
		t.Fatalf("floor %d after acking all, want %d", floor, n+1)
	}
	// The declare of q2 was a synced apply after every ack was queued.
	var declareApply int
	for _, o := range st.ops() {
		if o.op.Kind == store.OpPutMeta && o.sync && o.apply > declareApply {
			declareApply = o.apply
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
