package storetest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/sluicemq/sluice/internal/store"
)

func bodies(t *testing.T, s store.Store) store.Bodies {
	t.Helper()
	b, ok := s.(store.Bodies)
	if !ok {
		t.Skip("the store keeps no shared bodies")
	}
	return b
}

// putFanout puts body id for one message in each queue, at seq, in one batch.
func putFanout(t *testing.T, s store.Store, id, seq uint64, queues ...store.QueueID) {
	t.Helper()
	var b store.Batch
	var refs []store.BodyRef
	for _, q := range queues {
		b.PutIndexed(q, seq, fmt.Appendf(nil, "ref-%d", id), []byte{1})
		refs = append(refs, store.BodyRef{Queue: q, Seq: seq})
	}
	b.PutBody(id, fmt.Appendf(nil, "body-%d", id), refs)
	apply(t, s, &b, true)
}

func sweep(t *testing.T, bs store.Bodies) int {
	t.Helper()
	next, n, err := bs.SweepBodies(0, 0)
	if err != nil || next != 0 {
		t.Fatalf("SweepBodies(0, 0) = %d, %d, %v; want next 0, no error", next, n, err)
	}
	return n
}

func wantBody(t *testing.T, bs store.Bodies, id uint64, present bool) {
	t.Helper()
	got, err := bs.GetBody(id)
	switch {
	case present && (err != nil || string(got) != fmt.Sprintf("body-%d", id)):
		t.Fatalf("GetBody(%d) = %q, %v; want body-%d", id, got, err, id)
	case !present && !errors.Is(err, store.ErrNotFound):
		t.Fatalf("GetBody(%d) = %q, %v; want ErrNotFound", id, got, err)
	}
}

// testSharedBodies: a body stays while any of its refs is live, however
// the others went (an ack, a floor moved past it, a purge, a queue drop),
// and goes at the sweep after its last ref did.
func testSharedBodies(t *testing.T, s store.Store) {
	bs := bodies(t, s)
	if id, err := bs.LastBodyID(); err != nil || id != 0 {
		t.Fatalf("LastBodyID of an empty store = %d, %v", id, err)
	}
	for id := uint64(1); id <= 4; id++ {
		putFanout(t, s, id, id, 1, 2, 3)
	}
	if id, err := bs.LastBodyID(); err != nil || id != 4 {
		t.Fatalf("LastBodyID = %d, %v; want 4", id, err)
	}
	refs, err := bs.BodyRefs(2)
	check(t, "BodyRefs(2)", refs, []store.BodyRef{{Queue: 1, Seq: 2}, {Queue: 2, Seq: 2}, {Queue: 3, Seq: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if n := sweep(t, bs); n != 0 {
		t.Fatalf("swept %d bodies every queue still refers to", n)
	}

	// Queue 1 acks 1 and 2 one by one, queue 2 moves its floor past 1..3
	// without deleting them, queue 3 purges 1..2.
	var b store.Batch
	b.DeleteMessage(1, 1)
	b.DeleteMessage(1, 2)
	b.SetFloor(2, 4)
	b.DeleteRange(3, 1, 3)
	apply(t, s, &b, false)
	if n := sweep(t, bs); n != 2 {
		t.Fatalf("swept %d bodies, want 2 (ids 1 and 2)", n)
	}
	for id := uint64(1); id <= 4; id++ {
		wantBody(t, bs, id, id > 2)
	}
	// Body 3 is still queue 1's and queue 3's; a drop of queue 3 leaves it
	// to queue 1.
	b.Reset()
	b.DropQueue(3)
	apply(t, s, &b, false)
	if n := sweep(t, bs); n != 0 {
		t.Fatalf("swept %d bodies queue 1 still refers to", n)
	}
	b.Reset()
	b.SetFloor(1, 5)
	apply(t, s, &b, false)
	if n := sweep(t, bs); n != 1 {
		t.Fatalf("swept %d bodies, want 1 (id 3; 4 is queue 2's)", n)
	}
	wantBody(t, bs, 3, false)
	wantBody(t, bs, 4, true)
	b.Reset()
	b.DeleteMessage(2, 4)
	apply(t, s, &b, false)
	if n := sweep(t, bs); n != 1 {
		t.Fatalf("swept %d bodies, want 1 (id 4)", n)
	}
	if _, err := bs.BodyRefs(4); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("BodyRefs of a swept body: %v, want ErrNotFound", err)
	}
	if id, err := bs.LastBodyID(); err != nil || id != 0 {
		t.Fatalf("LastBodyID after every body went = %d, %v", id, err)
	}
}

// testSweepResumes: a sweep limited to max bodies says where to go on, and
// the sweeps together visit every body once.
func testSweepResumes(t *testing.T, s store.Store) {
	bs := bodies(t, s)
	for id := uint64(1); id <= 10; id++ {
		putFanout(t, s, id, id, 7, 8)
	}
	var b store.Batch
	b.SetFloor(7, 11)
	b.SetFloor(8, 11)
	apply(t, s, &b, false)
	var from uint64 = 1
	total, rounds := 0, 0
	for {
		next, n, err := bs.SweepBodies(from, 3)
		if err != nil {
			t.Fatal(err)
		}
		total += n
		rounds++
		if next == 0 {
			break
		}
		if next <= from || rounds > 10 {
			t.Fatalf("sweep from %d resumes at %d", from, next)
		}
		from = next
	}
	if total != 10 || rounds != 4 {
		t.Fatalf("swept %d bodies in %d rounds of 3, want 10 in 4", total, rounds)
	}
}

func testBodyWithoutRefs(t *testing.T, s store.Store) {
	var b store.Batch
	b.PutBody(1, []byte("orphan"), nil)
	if err := s.Apply(&b, true); !errors.Is(err, store.ErrInvalidBatch) {
		t.Fatalf("Apply of a body without refs: %v, want ErrInvalidBatch", err)
	}
}
