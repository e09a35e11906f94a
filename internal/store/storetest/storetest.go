// Package storetest is the conformance suite every store.Store passes.
//
// An engine's test calls Run with a function that opens a fresh, empty store
// for one subtest:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return memstore.New() })
//	}
//
// Run closes each store when its subtest ends (a second Close returning
// store.ErrClosed is fine). The suite checks behaviour through the interface
// only; durability across reopen and fault handling are the engine's own
// tests. The suite owns no goroutines beyond those of one subtest, and waits
// for them.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/sluicemq/sluice/internal/store"
)

// Run runs the conformance suite against stores made by open.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"ScanOrder", testScanOrder},
		{"ScanFromFloor", testScanFromFloor},
		{"ScanStopsEarly", testScanStopsEarly},
		{"ScanReentrant", testScanReentrant},
		{"GetCopies", testGetCopies},
		{"ApplyCopiesValues", testApplyCopiesValues},
		{"NotFound", testNotFound},
		{"LastSeq", testLastSeq},
		{"DeleteRange", testDeleteRange},
		{"SetFloor", testSetFloor},
		{"DropQueue", testDropQueue},
		{"State", testState},
		{"Index", testIndex},
		{"IndexDeletedWithMessages", testIndexDeleted},
		{"DelayOrder", testDelayOrder},
		{"MetaPrefix", testMetaPrefix},
		{"BatchOrder", testBatchOrder},
		{"InvalidBatchChangesNothing", testInvalidBatch},
		{"Closed", testClosed},
		{"ConcurrentApply", testConcurrentApply},
		{"ApplyAsyncPipelines", testApplyAsync},
		{"SharedBodies", testSharedBodies},
		{"SweepBodiesResumes", testSweepResumes},
		{"BodyWithoutRefsInvalid", testBodyWithoutRefs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

func apply(t *testing.T, s store.Store, b *store.Batch, sync bool) {
	t.Helper()
	if err := s.Apply(b, sync); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func rec(q store.QueueID, seq uint64) []byte {
	return fmt.Appendf(nil, "q%d-m%d", q, seq)
}

type msg struct {
	seq uint64
	rec string
}

func scanAll(t *testing.T, s store.Store, q store.QueueID, from uint64) []msg {
	t.Helper()
	var got []msg
	if err := s.Scan(q, from, func(seq uint64, r []byte) bool {
		got = append(got, msg{seq, string(r)})
		return true
	}); err != nil {
		t.Fatalf("Scan(%d, %d): %v", q, from, err)
	}
	return got
}

func wantMsgs(q store.QueueID, seqs ...uint64) []msg {
	var w []msg
	for _, seq := range seqs {
		w = append(w, msg{seq, string(rec(q, seq))})
	}
	return w
}

func seqRange(lo, hi uint64) []uint64 {
	var s []uint64
	for i := lo; i < hi; i++ {
		s = append(s, i)
	}
	return s
}

func check[T any](t *testing.T, what string, got, want []T) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d entries, want %d\ngot  %v\nwant %v", what, len(got), len(want), trim(got), trim(want))
	}
	for i := range got {
		if fmt.Sprint(got[i]) != fmt.Sprint(want[i]) {
			t.Fatalf("%s: entry %d = %v, want %v", what, i, got[i], want[i])
		}
	}
}

func trim[T any](s []T) []T {
	if len(s) > 20 {
		return s[:20]
	}
	return s
}

func testScanOrder(t *testing.T, s store.Store) {
	var b store.Batch
	// Out of order, across queues whose ids differ in the low and high bytes,
	// and seqs that differ in every byte, so a little-endian or textual key
	// encoding would misorder them.
	seqs := []uint64{300, 1, 256, 2, 1 << 40, 255, 65536, 1<<64 - 1}
	for _, q := range []store.QueueID{1, 256, 2} {
		for _, seq := range seqs {
			b.PutMessage(q, seq, rec(q, seq))
		}
	}
	apply(t, s, &b, true)
	sorted := slices.Clone(seqs)
	slices.Sort(sorted)
	for _, q := range []store.QueueID{1, 2, 256} {
		check(t, fmt.Sprintf("Scan(%d, 0)", q), scanAll(t, s, q, 0), wantMsgs(q, sorted...))
		check(t, fmt.Sprintf("Scan(%d, 257)", q), scanAll(t, s, q, 257), wantMsgs(q, 300, 65536, 1<<40, 1<<64-1))
	}
	check(t, "Scan(3, 0)", scanAll(t, s, 3, 0), nil)

	// A long queue, more than any engine's internal chunk.
	b.Reset()
	for seq := uint64(1); seq <= 3000; seq++ {
		b.PutMessage(9, seq, rec(9, seq))
	}
	apply(t, s, &b, false)
	check(t, "Scan(9, 1)", scanAll(t, s, 9, 1), wantMsgs(9, seqRange(1, 3001)...))
	check(t, "Scan(9, 2999)", scanAll(t, s, 9, 2999), wantMsgs(9, 2999, 3000))
	check(t, "Scan(9, 3001)", scanAll(t, s, 9, 3001), nil)
}

func testScanFromFloor(t *testing.T, s store.Store) {
	var b store.Batch
	for seq := uint64(1); seq <= 5000; seq++ {
		b.PutMessage(4, seq, rec(4, seq))
	}
	apply(t, s, &b, true)
	// Ack in order in many small batches, advancing the floor as a broker does.
	for seq := uint64(1); seq <= 4990; seq++ {
		b.Reset()
		b.DeleteMessage(4, seq)
		b.SetFloor(4, seq+1)
		apply(t, s, &b, false)
	}
	floor, err := s.Floor(4)
	if err != nil || floor != 4991 {
		t.Fatalf("Floor = %d, %v; want 4991", floor, err)
	}
	check(t, "Scan from floor", scanAll(t, s, 4, floor), wantMsgs(4, seqRange(4991, 5001)...))
	check(t, "Scan from 0", scanAll(t, s, 4, 0), wantMsgs(4, seqRange(4991, 5001)...))
	if last, err := s.LastSeq(4); err != nil || last != 5000 {
		t.Fatalf("LastSeq = %d, %v; want 5000", last, err)
	}
}

func testScanStopsEarly(t *testing.T, s store.Store) {
	var b store.Batch
	for seq := uint64(1); seq <= 1000; seq++ {
		b.PutMessage(1, seq, rec(1, seq))
	}
	apply(t, s, &b, false)
	var calls int
	if err := s.Scan(1, 10, func(seq uint64, _ []byte) bool {
		calls++
		return seq < 14
	}); err != nil {
		t.Fatal(err)
	}
	if calls != 5 {
		t.Fatalf("Scan called fn %d times after it returned false at seq 14, want 5", calls)
	}
}

// testScanReentrant checks that fn may call the store while a scan runs.
func testScanReentrant(t *testing.T, s store.Store) {
	var b store.Batch
	for seq := uint64(1); seq <= 600; seq++ {
		b.PutMessage(1, seq, rec(1, seq))
		b.PutState(1, seq, []byte{1})
	}
	b.PutMeta("k", []byte("v"))
	apply(t, s, &b, false)
	n := 0
	if err := s.Scan(1, 1, func(seq uint64, r []byte) bool {
		got, err := s.Get(1, seq)
		if err != nil || !bytes.Equal(got, r) {
			t.Fatalf("Get(%d) inside Scan = %q, %v; want %q", seq, got, err, r)
		}
		if _, err := s.GetMeta("k"); err != nil {
			t.Fatalf("GetMeta inside Scan: %v", err)
		}
		n++
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if n != 600 {
		t.Fatalf("Scan visited %d messages, want 600", n)
	}
}

func testGetCopies(t *testing.T, s store.Store) {
	var b store.Batch
	b.PutMessage(1, 1, []byte("hello"))
	b.PutMeta("m", []byte("world"))
	apply(t, s, &b, false)
	got, err := s.Get(1, 1)
	if err != nil || string(got) != "hello" {
		t.Fatalf("Get = %q, %v; want hello", got, err)
	}
	got[0] = 'X'
	if again, _ := s.Get(1, 1); string(again) != "hello" {
		t.Fatalf("Get after modifying an earlier result = %q, want hello", again)
	}
	m, err := s.GetMeta("m")
	if err != nil || string(m) != "world" {
		t.Fatalf("GetMeta = %q, %v; want world", m, err)
	}
	m[0] = 'X'
	if again, _ := s.GetMeta("m"); string(again) != "world" {
		t.Fatalf("GetMeta after modifying an earlier result = %q, want world", again)
	}
}

func testApplyCopiesValues(t *testing.T, s store.Store) {
	buf := []byte("abc")
	var b store.Batch
	b.PutMessage(1, 1, buf)
	b.PutState(1, 1, buf)
	b.PutMeta("k", buf)
	apply(t, s, &b, false)
	copy(buf, "XYZ") // a caller reuses its buffer after Apply
	if got, _ := s.Get(1, 1); string(got) != "abc" {
		t.Fatalf("message after caller reused its buffer = %q, want abc", got)
	}
	if got, _ := s.GetMeta("k"); string(got) != "abc" {
		t.Fatalf("meta after caller reused its buffer = %q, want abc", got)
	}
	var st string
	if err := s.ScanState(1, func(_ uint64, v []byte) bool { st = string(v); return true }); err != nil {
		t.Fatal(err)
	}
	if st != "abc" {
		t.Fatalf("state after caller reused its buffer = %q, want abc", st)
	}
}

func testNotFound(t *testing.T, s store.Store) {
	var b store.Batch
	b.PutMessage(1, 1, rec(1, 1))
	b.PutMeta("a", []byte("1"))
	b.PutMessage(1, 2, nil) // an empty record is a record
	apply(t, s, &b, false)
	for _, c := range []struct {
		q   store.QueueID
		seq uint64
	}{{1, 0}, {1, 3}, {2, 1}} {
		if _, err := s.Get(c.q, c.seq); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%d, %d) = %v, want ErrNotFound", c.q, c.seq, err)
		}
	}
	if got, err := s.Get(1, 2); err != nil || len(got) != 0 {
		t.Errorf("Get of an empty record = %q, %v; want empty, nil", got, err)
	}
	for _, k := range []string{"", "b", "a0", "A"} {
		if _, err := s.GetMeta(k); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetMeta(%q) = %v, want ErrNotFound", k, err)
		}
	}
	b.Reset()
	b.DeleteMessage(1, 1)
	b.DeleteMeta("a")
	apply(t, s, &b, false)
	if _, err := s.Get(1, 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of a deleted message = %v, want ErrNotFound", err)
	}
	if _, err := s.GetMeta("a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetMeta of a deleted key = %v, want ErrNotFound", err)
	}
}

func testLastSeq(t *testing.T, s store.Store) {
	lastSeq := func(q store.QueueID) uint64 {
		t.Helper()
		n, err := s.LastSeq(q)
		if err != nil {
			t.Fatalf("LastSeq(%d): %v", q, err)
		}
		return n
	}
	if n := lastSeq(1); n != 0 {
		t.Fatalf("LastSeq of an empty queue = %d, want 0", n)
	}
	var b store.Batch
	for _, seq := range []uint64{5, 9, 7} {
		b.PutMessage(1, seq, rec(1, seq))
	}
	b.PutMessage(2, 100, rec(2, 100)) // a higher queue must not leak into queue 1
	b.PutState(1, 50, []byte{1})      // nor a state entry
	apply(t, s, &b, false)
	if n := lastSeq(1); n != 9 {
		t.Fatalf("LastSeq = %d, want 9", n)
	}
	b.Reset()
	b.DeleteMessage(1, 9)
	apply(t, s, &b, false)
	if n := lastSeq(1); n != 7 {
		t.Fatalf("LastSeq after deleting the tail = %d, want 7", n)
	}
	b.Reset()
	b.DeleteMessage(1, 7)
	b.DeleteMessage(1, 5)
	apply(t, s, &b, false)
	if n := lastSeq(1); n != 0 {
		t.Fatalf("LastSeq after deleting all = %d, want 0", n)
	}
	if n := lastSeq(2); n != 100 {
		t.Fatalf("LastSeq(2) = %d, want 100", n)
	}
}

func scanStates(t *testing.T, s store.Store, q store.QueueID) []msg {
	t.Helper()
	var got []msg
	if err := s.ScanState(q, func(seq uint64, v []byte) bool {
		got = append(got, msg{seq, string(v)})
		return true
	}); err != nil {
		t.Fatalf("ScanState(%d): %v", q, err)
	}
	return got
}

func testDeleteRange(t *testing.T, s store.Store) {
	var b store.Batch
	for _, q := range []store.QueueID{1, 2} {
		for seq := uint64(1); seq <= 20; seq++ {
			b.PutMessage(q, seq, rec(q, seq))
			b.PutState(q, seq, rec(q, seq))
		}
	}
	apply(t, s, &b, false)
	b.Reset()
	b.DeleteRange(1, 5, 15)
	b.DeleteRange(1, 18, 18) // empty
	apply(t, s, &b, false)
	want := wantMsgs(1, append(seqRange(1, 5), seqRange(15, 21)...)...)
	check(t, "messages after DeleteRange", scanAll(t, s, 1, 0), want)
	check(t, "states after DeleteRange", scanStates(t, s, 1), want)
	check(t, "other queue's messages", scanAll(t, s, 2, 0), wantMsgs(2, seqRange(1, 21)...))
	check(t, "other queue's states", scanStates(t, s, 2), wantMsgs(2, seqRange(1, 21)...))
	b.Reset()
	b.DeleteRange(1, 0, 1<<64-1)
	apply(t, s, &b, false)
	check(t, "messages after DeleteRange of all", scanAll(t, s, 1, 0), wantMsgs(1, 1<<64-1)[:0])
}

func testSetFloor(t *testing.T, s store.Store) {
	floor := func(q store.QueueID) uint64 {
		t.Helper()
		f, err := s.Floor(q)
		if err != nil {
			t.Fatalf("Floor(%d): %v", q, err)
		}
		return f
	}
	if f := floor(1); f != 0 {
		t.Fatalf("Floor of a new queue = %d, want 0", f)
	}
	var b store.Batch
	for seq := uint64(1); seq <= 10000; seq++ {
		b.PutMessage(1, seq, rec(1, seq))
	}
	apply(t, s, &b, true)
	// Floors advance far enough that an engine may drop the acked prefix.
	for _, f := range []uint64{2, 5000, 9000, 9990} {
		b.Reset()
		b.DeleteRange(1, 0, f) // the broker acked everything below f
		b.SetFloor(1, f)
		b.SetFloor(2, f/2)
		apply(t, s, &b, false)
		if got := floor(1); got != f {
			t.Fatalf("Floor(1) = %d, want %d", got, f)
		}
		if got := floor(2); got != f/2 {
			t.Fatalf("Floor(2) = %d, want %d", got, f/2)
		}
		check(t, "Scan from floor", scanAll(t, s, 1, f), wantMsgs(1, seqRange(f, 10001)...))
	}
	// SetFloor alone, without deleting: messages at and above the floor stay.
	b.Reset()
	b.SetFloor(1, 9995)
	apply(t, s, &b, false)
	check(t, "Scan after SetFloor", scanAll(t, s, 1, 9995), wantMsgs(1, seqRange(9995, 10001)...))
	if got := floor(3); got != 0 {
		t.Fatalf("Floor(3) = %d, want 0", got)
	}
}

func testDropQueue(t *testing.T, s store.Store) {
	var b store.Batch
	for _, q := range []store.QueueID{1, 2, 3} {
		for seq := uint64(1); seq <= 50; seq++ {
			b.PutMessage(q, seq, rec(q, seq))
			b.PutState(q, seq, []byte{1})
		}
		b.SetFloor(q, 1)
		b.PutDelay(1000, q, 7)
	}
	b.PutMeta("queue/2", []byte("def"))
	apply(t, s, &b, true)
	b.Reset()
	b.DropQueue(2)
	apply(t, s, &b, true)
	check(t, "dropped queue's messages", scanAll(t, s, 2, 0), nil)
	check(t, "dropped queue's states", scanStates(t, s, 2), nil)
	if f, err := s.Floor(2); err != nil || f != 0 {
		t.Fatalf("dropped queue's Floor = %d, %v; want 0", f, err)
	}
	if n, err := s.LastSeq(2); err != nil || n != 0 {
		t.Fatalf("dropped queue's LastSeq = %d, %v; want 0", n, err)
	}
	for _, q := range []store.QueueID{1, 3} {
		check(t, "other queue's messages", scanAll(t, s, q, 1), wantMsgs(q, seqRange(1, 51)...))
		if f, _ := s.Floor(q); f != 1 {
			t.Fatalf("Floor(%d) = %d, want 1", q, f)
		}
	}
	if got := scanDelays(t, s, 0); len(got) != 3 {
		t.Fatalf("DropQueue touched the delay index (the caller owns it): %v", got)
	}
	if _, err := s.GetMeta("queue/2"); err != nil {
		t.Fatalf("DropQueue touched metadata: %v", err)
	}
	// The queue id may be used again.
	b.Reset()
	b.PutMessage(2, 1, rec(2, 1))
	apply(t, s, &b, false)
	check(t, "reused queue", scanAll(t, s, 2, 0), wantMsgs(2, 1))
}

func scanIndex(t *testing.T, s store.Store, q store.QueueID, from uint64) []msg {
	t.Helper()
	var got []msg
	if err := s.ScanIndex(q, from, func(seq uint64, v []byte) bool {
		got = append(got, msg{seq, string(v)})
		return true
	}); err != nil {
		t.Fatalf("ScanIndex(%d, %d): %v", q, from, err)
	}
	return got
}

func idx(q store.QueueID, seq uint64) []byte { return fmt.Appendf(nil, "i%d/%d", q, seq) }

func wantIndex(q store.QueueID, seqs ...uint64) []msg {
	out := make([]msg, len(seqs))
	for i, seq := range seqs {
		out[i] = msg{seq, string(idx(q, seq))}
	}
	return out
}

// testIndex: PutIndexed writes an index entry next to the message, read
// back by ScanIndex in seq order from a seq; PutMessage writes none.
func testIndex(t *testing.T, s store.Store) {
	var b store.Batch
	for _, q := range []store.QueueID{1, 2} {
		for _, seq := range []uint64{7, 3, 1 << 40, 5} {
			b.PutIndexed(q, seq, rec(q, seq), idx(q, seq))
		}
		b.PutMessage(q, 4, rec(q, 4)) // no index entry
	}
	v := idx(1, 9)
	b.PutIndexed(1, 9, rec(1, 9), v)
	apply(t, s, &b, true)
	v[0] = 'X' // the store keeps its own copy
	check(t, "ScanIndex from 0", scanIndex(t, s, 1, 0), wantIndex(1, 3, 5, 7, 9, 1<<40))
	check(t, "ScanIndex from 6", scanIndex(t, s, 1, 6), wantIndex(1, 7, 9, 1<<40))
	check(t, "other queue", scanIndex(t, s, 2, 0), wantIndex(2, 3, 5, 7, 1<<40))
	check(t, "messages", scanAll(t, s, 1, 0), wantMsgs(1, 3, 4, 5, 7, 9, 1<<40))
	check(t, "unknown queue", scanIndex(t, s, 3, 0), nil)
	n := 0
	if err := s.ScanIndex(1, 0, func(uint64, []byte) bool { n++; return n < 2 }); err != nil || n != 2 {
		t.Fatalf("ScanIndex stopping early: %d calls, %v; want 2", n, err)
	}
}

// testIndexDeleted: every way a message leaves takes its index entry along.
func testIndexDeleted(t *testing.T, s store.Store) {
	var b store.Batch
	for _, q := range []store.QueueID{1, 2} {
		for seq := uint64(1); seq <= 10000; seq++ {
			b.PutIndexed(q, seq, rec(q, seq), idx(q, seq))
		}
	}
	apply(t, s, &b, false)
	b.Reset()
	b.DeleteMessage(1, 2)
	b.DeleteMessage(1, 4)
	b.DeleteRange(1, 10, 20)
	apply(t, s, &b, false)
	want := append([]uint64{1, 3}, seqRange(5, 10)...)
	want = append(want, seqRange(20, 10001)...)
	check(t, "index after deletes", scanIndex(t, s, 1, 0), wantIndex(1, want...))
	// The broker acks below the floor, then moves it far enough that an
	// engine may range-delete the acked prefix.
	b.Reset()
	b.DeleteRange(1, 0, 9000)
	b.SetFloor(1, 9000)
	apply(t, s, &b, false)
	check(t, "index from the floor", scanIndex(t, s, 1, 9000), wantIndex(1, seqRange(9000, 10001)...))
	check(t, "index below the floor", scanIndex(t, s, 1, 0), wantIndex(1, seqRange(9000, 10001)...))
	// Ranges whose ends fall anywhere (an engine may group seqs in blocks).
	for _, r := range [][2]uint64{{1020, 3075}, {4096, 5120}, {6000, 6001}, {7000, 7000}} {
		b.Reset()
		b.DeleteRange(2, r[0], r[1])
		apply(t, s, &b, false)
	}
	var left []uint64
	for _, r := range [][2]uint64{{1, 1020}, {3075, 4096}, {5120, 6000}, {6001, 10001}} {
		left = append(left, seqRange(r[0], r[1])...)
	}
	check(t, "index after range deletes", scanIndex(t, s, 2, 0), wantIndex(2, left...))
	check(t, "messages after range deletes", scanAll(t, s, 2, 0), wantMsgs(2, left...))
	check(t, "index from inside a deleted range", scanIndex(t, s, 2, 5000), wantIndex(2, append(seqRange(5120, 6000), seqRange(6001, 10001)...)...))
	if n, err := s.LastSeq(2); err != nil || n != 10000 {
		t.Fatalf("LastSeq = %d, %v; want 10000", n, err)
	}
	b.Reset()
	b.DropQueue(2)
	apply(t, s, &b, true)
	check(t, "dropped queue's index", scanIndex(t, s, 2, 0), nil)
	check(t, "other queue's index", scanIndex(t, s, 1, 9000), wantIndex(1, seqRange(9000, 10001)...))
}

func testState(t *testing.T, s store.Store) {
	var b store.Batch
	for _, seq := range []uint64{30, 10, 20, 1 << 33} {
		b.PutState(1, seq, []byte{1})
	}
	b.PutState(2, 15, []byte{2})
	apply(t, s, &b, false)
	b.Reset()
	b.PutState(1, 20, []byte{3}) // overwrite: state is mutable
	b.DeleteState(1, 30)
	b.DeleteState(1, 31) // absent: no error
	apply(t, s, &b, false)
	want := []msg{{10, "\x01"}, {20, "\x03"}, {1 << 33, "\x01"}}
	check(t, "ScanState", scanStates(t, s, 1), want)
	check(t, "ScanState(2)", scanStates(t, s, 2), []msg{{15, "\x02"}})
	// States are not messages.
	check(t, "Scan of a queue holding only states", scanAll(t, s, 1, 0), nil)
	n := 0
	if err := s.ScanState(1, func(uint64, []byte) bool { n++; return false }); err != nil || n != 1 {
		t.Fatalf("ScanState stopping early called fn %d times, %v; want 1", n, err)
	}
}

type delay struct {
	due int64
	q   store.QueueID
	seq uint64
}

func scanDelays(t *testing.T, s store.Store, from int64) []delay {
	t.Helper()
	var got []delay
	if err := s.ScanDelays(from, func(due int64, q store.QueueID, seq uint64) bool {
		got = append(got, delay{due, q, seq})
		return true
	}); err != nil {
		t.Fatalf("ScanDelays(%d): %v", from, err)
	}
	return got
}

func testDelayOrder(t *testing.T, s store.Store) {
	all := []delay{
		{-5, 1, 1}, {0, 3, 1}, {0, 2, 9}, {0, 2, 8}, {255, 1, 2}, {256, 1, 3},
		{1 << 40, 1, 1}, {1 << 40, 1, 0}, {-1 << 40, 7, 7}, {1<<63 - 1, 1, 1},
	}
	var b store.Batch
	for _, d := range all {
		b.PutDelay(d.due, d.q, d.seq)
	}
	apply(t, s, &b, false)
	sorted := []delay{
		{-1 << 40, 7, 7}, {-5, 1, 1}, {0, 2, 8}, {0, 2, 9}, {0, 3, 1}, {255, 1, 2},
		{256, 1, 3}, {1 << 40, 1, 0}, {1 << 40, 1, 1}, {1<<63 - 1, 1, 1},
	}
	check(t, "ScanDelays(min)", scanDelays(t, s, -1<<63), sorted)
	check(t, "ScanDelays(0)", scanDelays(t, s, 0), sorted[2:])
	check(t, "ScanDelays(256)", scanDelays(t, s, 256), sorted[6:])
	b.Reset()
	b.DeleteDelay(0, 2, 9)
	b.DeleteDelay(0, 2, 10) // absent
	apply(t, s, &b, false)
	check(t, "ScanDelays after delete", scanDelays(t, s, 0),
		[]delay{{0, 2, 8}, {0, 3, 1}, {255, 1, 2}, {256, 1, 3}, {1 << 40, 1, 0}, {1 << 40, 1, 1}, {1<<63 - 1, 1, 1}})
	n := 0
	if err := s.ScanDelays(0, func(int64, store.QueueID, uint64) bool { n++; return n < 2 }); err != nil || n != 2 {
		t.Fatalf("ScanDelays stopping early called fn %d times, %v; want 2", n, err)
	}
}

func testMetaPrefix(t *testing.T, s store.Store) {
	kv := map[string]string{
		"exchange/a": "1", "exchange/b": "2", "exchange": "3", "exchangf": "4",
		"queue/x": "5", "queue/x/y": "6", "": "7", "q": "8", "queue/\xff": "9",
	}
	var b store.Batch
	for k, v := range kv {
		b.PutMeta(k, []byte(v))
	}
	apply(t, s, &b, false)
	scan := func(prefix string) []string {
		var got []string
		if err := s.ScanMeta(prefix, func(k string, v []byte) bool {
			got = append(got, k+"="+string(v))
			return true
		}); err != nil {
			t.Fatalf("ScanMeta(%q): %v", prefix, err)
		}
		return got
	}
	check(t, `ScanMeta("exchange/")`, scan("exchange/"), []string{"exchange/a=1", "exchange/b=2"})
	check(t, `ScanMeta("exchange")`, scan("exchange"), []string{"exchange=3", "exchange/a=1", "exchange/b=2"})
	check(t, `ScanMeta("queue/")`, scan("queue/"), []string{"queue/x=5", "queue/x/y=6", "queue/\xff=9"})
	check(t, `ScanMeta("nothing")`, scan("nothing"), nil)
	all := scan("")
	var keys []string
	for k := range kv {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var want []string
	for _, k := range keys {
		want = append(want, k+"="+kv[k])
	}
	check(t, `ScanMeta("")`, all, want)
	b.Reset()
	b.PutMeta("exchange/a", []byte("new"))
	b.DeleteMeta("exchange/b")
	apply(t, s, &b, false)
	check(t, `ScanMeta("exchange/") after update`, scan("exchange/"), []string{"exchange/a=new"})
}

func testBatchOrder(t *testing.T, s store.Store) {
	var b store.Batch
	b.PutMessage(1, 1, rec(1, 1))
	b.DeleteMessage(1, 1)
	b.PutMessage(1, 2, rec(1, 2))
	b.PutMeta("k", []byte("first"))
	b.PutMeta("k", []byte("second"))
	b.PutState(1, 2, []byte("a"))
	b.DeleteState(1, 2)
	b.PutState(1, 2, []byte("b"))
	b.SetFloor(1, 1)
	b.SetFloor(1, 2)
	apply(t, s, &b, true)
	check(t, "messages", scanAll(t, s, 1, 0), wantMsgs(1, 2))
	check(t, "states", scanStates(t, s, 1), []msg{{2, "b"}})
	if v, _ := s.GetMeta("k"); string(v) != "second" {
		t.Fatalf("meta = %q, want the later put", v)
	}
	if f, _ := s.Floor(1); f != 2 {
		t.Fatalf("Floor = %d, want the later SetFloor", f)
	}
	// A move (dead-letter, redrive) is one batch: delete here, put there.
	b.Reset()
	b.DeleteMessage(1, 2)
	b.DeleteState(1, 2)
	b.PutMessage(5, 1, rec(1, 2))
	apply(t, s, &b, true)
	check(t, "source after move", scanAll(t, s, 1, 0), nil)
	check(t, "target after move", scanAll(t, s, 5, 0), []msg{{1, string(rec(1, 2))}})
	// A range delete covers the writes before it in the batch, not those
	// after it, whatever their keys.
	b.Reset()
	b.PutIndexed(7, 5, rec(7, 5), idx(7, 5))
	b.PutState(7, 6, []byte("s6"))
	b.DeleteRange(7, 0, 10)
	b.PutIndexed(7, 3, rec(7, 3), idx(7, 3))
	b.PutState(7, 4, []byte("s4"))
	b.DeleteRange(7, 4, 5)
	b.PutIndexed(7, 4, rec(7, 4), idx(7, 4))
	apply(t, s, &b, true)
	check(t, "messages around range deletes", scanAll(t, s, 7, 0), wantMsgs(7, 3, 4))
	check(t, "index around range deletes", scanIndex(t, s, 7, 0), wantIndex(7, 3, 4))
	check(t, "states around range deletes", scanStates(t, s, 7), nil)
	// An empty batch is fine.
	b.Reset()
	apply(t, s, &b, true)
}

func testInvalidBatch(t *testing.T, s store.Store) {
	var b store.Batch
	b.PutMessage(1, 1, rec(1, 1))
	b.PutMeta("k", []byte("v"))
	apply(t, s, &b, true)
	for _, bad := range []store.Op{
		{Kind: 0},
		{Kind: 200},
		{Kind: store.OpDeleteRange, Queue: 1, Seq: 10, End: 5},
	} {
		b.Reset()
		b.PutMessage(1, 2, rec(1, 2))
		b.DeleteMessage(1, 1)
		b.PutMeta("k", []byte("changed"))
		b.SetFloor(1, 7)
		b.PutDelay(1, 1, 1)
		b.Ops = append(b.Ops, bad)
		if err := s.Apply(&b, true); !errors.Is(err, store.ErrInvalidBatch) {
			t.Fatalf("Apply with op %+v = %v, want ErrInvalidBatch", bad, err)
		}
		check(t, "messages after a failed batch", scanAll(t, s, 1, 0), wantMsgs(1, 1))
		if v, _ := s.GetMeta("k"); string(v) != "v" {
			t.Fatalf("meta after a failed batch = %q, want v", v)
		}
		if f, _ := s.Floor(1); f != 0 {
			t.Fatalf("Floor after a failed batch = %d, want 0", f)
		}
		if d := scanDelays(t, s, -1<<63); len(d) != 0 {
			t.Fatalf("delays after a failed batch = %v, want none", d)
		}
	}
}

func testClosed(t *testing.T, s store.Store) {
	var b store.Batch
	b.PutMessage(1, 1, rec(1, 1))
	apply(t, s, &b, true)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	noScan := func(uint64, []byte) bool { t.Error("fn called after Close"); return true }
	calls := map[string]error{
		"Apply":     s.Apply(&b, true),
		"Scan":      s.Scan(1, 0, noScan),
		"ScanState": s.ScanState(1, noScan),
		"ScanIndex": s.ScanIndex(1, 0, noScan),
		"ScanDelays": s.ScanDelays(0, func(int64, store.QueueID, uint64) bool {
			t.Error("fn called after Close")
			return true
		}),
		"ScanMeta": s.ScanMeta("", func(string, []byte) bool { t.Error("fn called after Close"); return true }),
		"Close":    s.Close(),
	}
	_, calls["Get"] = s.Get(1, 1)
	_, calls["LastSeq"] = s.LastSeq(1)
	_, calls["Floor"] = s.Floor(1)
	_, calls["GetMeta"] = s.GetMeta("k")
	for name, err := range calls {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}

func testConcurrentApply(t *testing.T, s store.Store) {
	const writers, batches, perBatch = 8, 50, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers+2)
	stop := make(chan struct{})
	for w := range writers {
		q := store.QueueID(w + 1)
		wg.Go(func() {
			var b store.Batch
			seq := uint64(1)
			for i := range batches {
				b.Reset()
				for range perBatch {
					b.PutMessage(q, seq, rec(q, seq))
					seq++
				}
				if seq > 100 { // ack some, as consumers would
					b.DeleteMessage(q, seq-100)
				}
				b.PutMeta(fmt.Sprintf("w/%d", w), fmt.Appendf(nil, "%d", i))
				if err := s.Apply(&b, i%5 == 0); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				prev := uint64(0)
				err := s.Scan(3, 0, func(seq uint64, _ []byte) bool {
					if seq <= prev {
						errs <- fmt.Errorf("concurrent Scan out of order: %d after %d", seq, prev)
						return false
					}
					prev = seq
					return true
				})
				if err != nil {
					errs <- err
					return
				}
				if err := s.ScanMeta("w/", func(string, []byte) bool { return true }); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := uint64(batches * perBatch)
	for w := range writers {
		q := store.QueueID(w + 1)
		got := scanAll(t, s, q, 0)
		if len(got) == 0 || got[len(got)-1].seq != total {
			t.Fatalf("queue %d holds %d messages, want the last to be seq %d", q, len(got), total)
		}
		if last, _ := s.LastSeq(q); last != total {
			t.Fatalf("LastSeq(%d) = %d, want %d", q, last, total)
		}
		if v, _ := s.GetMeta(fmt.Sprintf("w/%d", w)); string(v) != fmt.Sprint(batches-1) {
			t.Fatalf("meta w/%d = %q, want %d", w, v, batches-1)
		}
	}
}

// testApplyAsync: batches applied with ApplyAsync are visible at once, in
// order, and their waits all succeed, also when several are in flight.
func testApplyAsync(t *testing.T, s store.Store) {
	const batches, per = 20, 50
	var waits []func() error
	for i := 0; i < batches; i++ {
		var b store.Batch
		for j := 1; j <= per; j++ {
			seq := uint64(i*per + j)
			b.PutMessage(1, seq, rec(1, seq))
		}
		wait, err := s.ApplyAsync(&b)
		if err != nil {
			t.Fatalf("ApplyAsync %d: %v", i, err)
		}
		if got, err := s.Get(1, uint64((i+1)*per)); err != nil || !bytes.Equal(got, rec(1, uint64((i+1)*per))) {
			t.Fatalf("batch %d not visible after ApplyAsync: %q, %v", i, got, err)
		}
		waits = append(waits, wait)
	}
	for i, wait := range waits {
		if err := wait(); err != nil {
			t.Fatalf("wait %d: %v", i, err)
		}
	}
	var invalid store.Batch
	invalid.Ops = append(invalid.Ops, store.Op{Kind: 0})
	if _, err := s.ApplyAsync(&invalid); err == nil {
		t.Error("ApplyAsync of an invalid batch succeeded")
	}
	n := 0
	if err := s.Scan(1, 0, func(seq uint64, r []byte) bool {
		n++
		if !bytes.Equal(r, rec(1, seq)) {
			t.Errorf("seq %d = %q", seq, r)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if n != batches*per {
		t.Errorf("scan found %d messages, want %d", n, batches*per)
	}
}
