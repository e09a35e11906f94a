package pebblestore

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/sluicemq/sluice/internal/store"
)

func fillQueue(t *testing.T, s *Store, q store.QueueID, n int) {
	t.Helper()
	var b store.Batch
	for seq := 1; seq <= n; seq++ {
		b.PutMessage(q, uint64(seq), []byte(fmt.Sprintf("rec-%d", seq)))
	}
	mustApply(t, s, &b, false)
}

func wantRecord(t *testing.T, s *Store, q store.QueueID, seq uint64) {
	t.Helper()
	got, err := s.Get(q, seq)
	if err != nil {
		t.Fatalf("Get(%d, %d): %v", q, seq, err)
	}
	if want := fmt.Sprintf("rec-%d", seq); string(got) != want {
		t.Fatalf("Get(%d, %d) = %q, want %q", q, seq, got, want)
	}
}

func wantGone(t *testing.T, s *Store, q store.QueueID, seq uint64) {
	t.Helper()
	if got, err := s.Get(q, seq); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(%d, %d) = %q, %v; want ErrNotFound", q, seq, got, err)
	}
}

// TestReadaheadServesSequentialGets: a drain in seq order reads every
// record right, through windows of read-ahead, across window boundaries.
func TestReadaheadServesSequentialGets(t *testing.T) {
	s := open(t, "db", Options{FS: vfs.NewMem(), MemTableSize: 1 << 20, CacheSize: 1 << 20, RangeDeleteEvery: 4096, CompactEvery: 4096})
	fillQueue(t, s, 1, 1000)
	for seq := uint64(1); seq <= 1000; seq++ {
		wantRecord(t, s, 1, seq)
	}
	if s.ahead.bytes != 0 {
		t.Errorf("after the drain the windows still hold %d bytes", s.ahead.bytes)
	}
}

// TestReadaheadForgetsDeletes: records deleted after they were read ahead
// are not handed out.
func TestReadaheadForgetsDeletes(t *testing.T) {
	s := open(t, "db", Options{FS: vfs.NewMem(), MemTableSize: 1 << 20, CacheSize: 1 << 20, RangeDeleteEvery: 4096, CompactEvery: 4096})
	fillQueue(t, s, 1, 300)
	wantRecord(t, s, 1, 1)
	wantRecord(t, s, 1, 2) // sequential: reads 3.. ahead

	var b store.Batch
	b.DeleteMessage(1, 3)
	b.DeleteRange(1, 10, 20)
	mustApply(t, s, &b, false)
	wantGone(t, s, 1, 3)
	wantRecord(t, s, 1, 4)
	wantRecord(t, s, 1, 9)
	wantGone(t, s, 1, 10)
	wantGone(t, s, 1, 19)
	wantRecord(t, s, 1, 20)

	b.Reset()
	b.DropQueue(1)
	mustApply(t, s, &b, false)
	wantGone(t, s, 1, 21)
	if s.ahead.bytes != 0 {
		t.Errorf("a dropped queue's window still holds %d bytes", s.ahead.bytes)
	}
}

// TestReadaheadDiscardsStaleRead: a read-ahead begun before a delete was
// committed is not installed.
func TestReadaheadDiscardsStaleRead(t *testing.T) {
	r := newReadahead()
	_, _, gen := r.take(1, 5)
	var b store.Batch
	b.DeleteMessage(1, 6)
	r.forget(&b)
	r.install(1, 6, [][]byte{[]byte("six")}, 3, gen)
	if rec, _, _ := r.take(1, 6); rec != nil {
		t.Fatalf("a stale read-ahead handed out %q", rec)
	}
}
