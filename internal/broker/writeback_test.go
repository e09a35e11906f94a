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

// Changes queued while the flusher is busy go to the store together, in
// the order they were queued, and before a later direct apply.
func TestWriteBehindBatchesInOrder(t *testing.T) {
	st := newRecordingStore()
	release := make(chan struct{})
	st.hold = release
	w := newWriteBehind(st, discardLog())
	w.start()
	t.Cleanup(w.close)

	var b store.Batch
	b.DeleteMessage(1, 1)
	w.queue(&b)
	<-st.entry // the flusher is applying seq 1 and waits
	for seq := uint64(2); seq <= 50; seq++ {
		b.DeleteMessage(1, seq)
		b.SetFloor(1, seq+1)
		w.queue(&b)
		if b.Len() != 0 {
			t.Fatalf("queue left %d ops in the caller's batch", b.Len())
		}
	}
	direct := make(chan error, 1)
	go func() {
		var d store.Batch
		d.PutMeta("after", []byte("x"))
		direct <- w.Apply(&d, true)
	}()
	st.mu.Lock()
	st.hold = nil
	st.mu.Unlock()
	close(release)
	if err := <-direct; err != nil {
		t.Fatal(err)
	}
	ops := st.ops()
	var seqs []uint64
	for _, o := range ops {
		if o.op.Kind == store.OpDeleteMessage {
			seqs = append(seqs, o.op.Seq)
		}
	}
	want := make([]uint64, 50)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	if !slices.Equal(seqs, want) {
		t.Fatalf("deletes reached the store in order %v", seqs)
	}
	last := ops[len(ops)-1]
	if last.op.Kind != store.OpPutMeta || !last.sync {
		t.Fatalf("the direct apply is not last, or not synced: %+v", last)
	}
	// One apply for seq 1, then at most two for the 49 queued meanwhile
	// and the direct one (the flusher may take them first, or the direct
	// apply carries them).
	if n := st.applies(); n > 3 {
		t.Fatalf("%d applies for 50 queued changes and one direct apply", n)
	}
	floors := 0
	for _, o := range ops {
		if o.op.Kind == store.OpSetFloor {
			floors++
		}
	}
	if floors > 2 { // folded: one per apply that carried queued changes
		t.Fatalf("%d SetFloor ops reached the store for 49 queued", floors)
	}
	if f, err := w.Floor(1); err != nil || f != 51 {
		t.Fatalf("floor %d, %v; want 51", f, err)
	}
}

// Before the flusher starts and after it stops, queued changes are applied
// at once; reads through the write-behind see queued changes.
func TestWriteBehindNotRunning(t *testing.T) {
	st := newRecordingStore()
	w := newWriteBehind(st, discardLog())
	var b store.Batch
	b.SetFloor(3, 7)
	w.queue(&b)
	if n := st.applies(); n != 1 {
		t.Fatalf("%d applies before start, want 1", n)
	}
	w.start()
	w.close()
	b.SetFloor(3, 9)
	w.queue(&b)
	if f, err := st.Store.Floor(3); err != nil || f != 9 {
		t.Fatalf("floor after close: %d, %v; want 9", f, err)
	}
	var bad store.Batch
	bad.DeleteRange(3, 5, 1)
	b.SetFloor(3, 10)
	w.mu.Lock()
	w.pending.Append(&b) // queued, as if the flusher were behind
	w.mu.Unlock()
	if err := w.Apply(&bad, true); err == nil {
		t.Fatal("malformed batch applied")
	}
	if f, err := w.Floor(3); err != nil || f != 10 {
		t.Fatalf("a malformed batch lost the queued changes: floor %d, %v", f, err)
	}
}

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
	lastAckApply, deletes := 0, 0
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
			deletes++
		case store.OpSetFloor:
			// A floor move is the ack of everything below it.
			if o.op.Seq < floor {
				t.Fatalf("floor went back from %d to %d", floor, o.op.Seq)
			}
			if at, ok := putAt[o.op.Seq-1]; o.op.Seq > 1 && (!ok || at > i) {
				t.Fatalf("floor moved to %d before the put of seq %d", o.op.Seq, o.op.Seq-1)
			}
			if o.op.Seq > floor {
				lastAckApply = o.apply
			}
			floor = o.op.Seq
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
