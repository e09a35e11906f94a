package store_test

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/sluicemq/sluice/internal/store"
	"github.com/sluicemq/sluice/internal/store/memstore"
	"github.com/sluicemq/sluice/internal/store/storetest"
)

// intent is a test intent: a message put in queue 1, synced or not.
type intent struct {
	seq  uint64
	sync bool
	done chan error
	size int64 // the bytes it says it carries (with sizedEnv)
}

// sizedEnv makes a test pipeline count intents' bytes against the bounds.
func sizedEnv(maxBytes, maxGroupBytes int64) func(*store.PipelineEnv[*intent]) {
	return func(env *store.PipelineEnv[*intent]) {
		env.Size = func(it *intent) int64 { return it.size }
		env.MaxBytes, env.MaxGroupBytes = maxBytes, maxGroupBytes
	}
}

func newTestPipeline(st store.Store, opts ...func(*store.PipelineEnv[*intent])) (*store.LocalPipeline[*intent], *[]uint64) {
	var mu sync.Mutex
	completed := new([]uint64)
	env := store.PipelineEnv[*intent]{
		Store: st,
		Prepare: func(group []*intent, b *store.Batch) bool {
			sync := false
			for _, it := range group {
				b.PutMessage(1, it.seq, []byte("m"))
				sync = sync || it.sync
			}
			return sync
		},
		Complete: func(group []*intent, err error) {
			mu.Lock()
			defer mu.Unlock()
			for _, it := range group {
				*completed = append(*completed, it.seq)
				it.done <- err
			}
		},
	}
	for _, o := range opts {
		o(&env)
	}
	return store.NewPipeline(env), completed
}

// Changes deferred while the pipeline is busy go to the store together, in
// the order they were deferred, and before a later direct apply.
func TestPipelineDefersInOrder(t *testing.T) {
	st := storetest.NewRecording(memstore.New())
	release := make(chan struct{})
	st.Hold(release)
	p, _ := newTestPipeline(st)
	p.Start()
	t.Cleanup(func() { _ = p.Close(context.Background()) })

	var b store.Batch
	b.DeleteMessage(1, 1)
	p.Defer(&b)
	<-st.Entered // the pipeline is applying seq 1 and waits
	for seq := uint64(2); seq <= 50; seq++ {
		b.DeleteMessage(1, seq)
		b.SetFloor(1, seq+1)
		p.Defer(&b)
		if b.Len() != 0 {
			t.Fatalf("Defer left %d ops in the caller's batch", b.Len())
		}
	}
	direct := make(chan error, 1)
	go func() {
		var d store.Batch
		d.PutMeta("after", []byte("x"))
		direct <- p.Apply(&d, true)
	}()
	st.Hold(nil)
	close(release)
	if err := <-direct; err != nil {
		t.Fatal(err)
	}
	ops := st.Ops()
	var seqs []uint64
	for _, o := range ops {
		if o.Op.Kind == store.OpDeleteMessage {
			seqs = append(seqs, o.Op.Seq)
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
	if last.Op.Kind != store.OpPutMeta || !last.Sync {
		t.Fatalf("the direct apply is not last, or not synced: %+v", last)
	}
	// One apply for seq 1, then at most two for the 49 deferred meanwhile
	// and the direct one (the pipeline may take them first, or the direct
	// apply carries them).
	if n := st.Applies(); n > 3 {
		t.Fatalf("%d applies for 50 deferred changes and one direct apply", n)
	}
	floors := 0
	for _, o := range ops {
		if o.Op.Kind == store.OpSetFloor {
			floors++
		}
	}
	if floors > 2 { // folded: one per apply that carried deferred changes
		t.Fatalf("%d SetFloor ops reached the store for 49 deferred", floors)
	}
	if f, err := p.Store().Floor(1); err != nil || f != 51 {
		t.Fatalf("floor %d, %v; want 51", f, err)
	}
}

// Before Start and after Close, deferred changes are applied at once;
// reads through the pipeline's Store see deferred changes; a malformed
// batch fails alone.
func TestPipelineNotRunning(t *testing.T) {
	st := storetest.NewRecording(memstore.New())
	p, _ := newTestPipeline(st)
	var b store.Batch
	b.SetFloor(3, 7)
	p.Defer(&b)
	if n := st.Applies(); n != 1 {
		t.Fatalf("%d applies before start, want 1", n)
	}
	p.Start()
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.SetFloor(3, 9)
	p.Defer(&b)
	if f, err := st.Store.Floor(3); err != nil || f != 9 {
		t.Fatalf("floor after close: %d, %v; want 9", f, err)
	}
	var bad store.Batch
	bad.DeleteRange(3, 5, 1)
	if err := p.Apply(&bad, true); !errors.Is(err, store.ErrInvalidBatch) {
		t.Fatalf("malformed batch: %v", err)
	}
	if err := p.Submit(&intent{seq: 1}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("submit after close: %v", err)
	}
}

// Intents complete in submit order, each after its group is applied; a
// failed apply fails its intents and keeps the deferred changes it carried
// for the next write.
func TestPipelineCompletesInOrder(t *testing.T) {
	st := storetest.NewRecording(memstore.New())
	p, completed := newTestPipeline(st)
	p.Start()
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	const n = 500
	its := make([]*intent, n)
	for i := range its {
		its[i] = &intent{seq: uint64(i + 1), sync: i%3 == 0, done: make(chan error, 1)}
		if err := p.Submit(its[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, it := range its {
		if err := <-it.done; err != nil {
			t.Fatal(err)
		}
	}
	want := make([]uint64, n)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	if !slices.Equal(*completed, want) {
		t.Fatalf("completed out of order: %v", *completed)
	}
	if p.Applies.Load() >= n {
		t.Fatalf("%d applies for %d intents: no grouping", p.Applies.Load(), n)
	}

	st.Fail(true)
	var b store.Batch
	b.SetFloor(1, 100)
	p.Defer(&b)
	_ = p.Flush() // fails: the floor stays deferred
	it := &intent{seq: n + 1, sync: true, done: make(chan error, 1)}
	if err := p.Submit(it); err != nil {
		t.Fatal(err)
	}
	if err := <-it.done; !errors.Is(err, storetest.ErrInjected) {
		t.Fatalf("intent of a failed apply: %v", err)
	}
	st.Fail(false)
	if f, err := p.Store().Floor(1); err != nil || f != 100 {
		t.Fatalf("floor %d, %v after the store recovered; want the deferred 100", f, err)
	}

	// A malformed batch fails alone: the changes deferred before it stay.
	b.SetFloor(3, 10)
	p.Defer(&b)
	var bad store.Batch
	bad.DeleteRange(3, 5, 1)
	if err := p.Apply(&bad, true); !errors.Is(err, store.ErrInvalidBatch) {
		t.Fatalf("malformed batch: %v", err)
	}
	if f, err := p.Store().Floor(3); err != nil || f != 10 {
		t.Fatalf("a malformed batch lost the deferred changes: floor %d, %v", f, err)
	}
}

// submitAsync submits it on a goroutine and returns what Submit returned,
// once it has.
func submitAsync(p *store.LocalPipeline[*intent], it *intent) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- p.Submit(it) }()
	return ch
}

// The bytes of intents submitted and not completed are bounded: a submit
// that would pass MaxBytes waits (its caller, a publisher's reader, stops
// reading the socket) until completions make room; one larger than the
// bound goes once nothing else is in flight.
func TestPipelineBoundsBytesInFlight(t *testing.T) {
	st := storetest.NewRecording(memstore.New())
	release := make(chan struct{})
	st.Hold(release)
	p, completed := newTestPipeline(st, sizedEnv(300, 1000))
	p.Start()
	t.Cleanup(func() { _ = p.Close(context.Background()) })

	its := []*intent{
		{seq: 1, size: 100}, {seq: 2, size: 100}, {seq: 3, size: 100}, // fill the bound
		{seq: 4, size: 100},  // waits for room
		{seq: 5, size: 1000}, // larger than the bound: waits for nothing in flight
	}
	for _, it := range its {
		it.sync, it.done = true, make(chan error, 1)
	}
	for _, it := range its[:3] {
		if err := p.Submit(it); err != nil {
			t.Fatal(err)
		}
	}
	<-st.Entered // seq 1 is being applied, and held
	if got := p.InflightBytes(); got != 300 {
		t.Fatalf("%d bytes in flight, want 300", got)
	}
	fourth := submitAsync(p, its[3])
	for p.Throttled.Load() == 0 {
		select {
		case err := <-fourth:
			t.Fatalf("a submit past the byte bound returned (%v) while the store held every write", err)
		default:
			runtime.Gosched()
		}
	}
	st.Hold(nil)
	close(release)
	if err := <-fourth; err != nil {
		t.Fatal(err)
	}
	if err := p.Submit(its[4]); err != nil {
		t.Fatal(err)
	}
	for _, it := range its {
		if err := <-it.done; err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(*completed, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("completed %v", *completed)
	}
	if got := p.InflightBytes(); got != 0 {
		t.Fatalf("%d bytes in flight after every intent completed", got)
	}
}

// A group is cut before the intent that would take it past MaxGroupBytes,
// which starts the next group; one intent larger than that is a group of
// its own.
func TestPipelineBoundsGroupBytes(t *testing.T) {
	st := storetest.NewRecording(memstore.New())
	release := make(chan struct{})
	st.Hold(release)
	p, _ := newTestPipeline(st, sizedEnv(1<<20, 250))
	p.Start()
	t.Cleanup(func() { _ = p.Close(context.Background()) })

	sizes := []int64{10, 100, 100, 100, 100, 400, 100}
	var its []*intent
	for i, n := range sizes {
		it := &intent{seq: uint64(i + 1), size: n, done: make(chan error, 1)}
		its = append(its, it)
		if err := p.Submit(it); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			<-st.Entered // the first is applied alone, and held
		}
	}
	st.Hold(nil)
	close(release)
	for _, it := range its {
		if err := <-it.done; err != nil {
			t.Fatal(err)
		}
	}
	var groups [][]uint64
	last := 0
	for _, op := range st.Ops() {
		if op.Apply != last {
			groups, last = append(groups, nil), op.Apply
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], op.Op.Seq)
	}
	want := [][]uint64{{1}, {2, 3}, {4, 5}, {6}, {7}}
	if !slices.EqualFunc(groups, want, slices.Equal) {
		t.Fatalf("groups %v, want %v", groups, want)
	}
}
