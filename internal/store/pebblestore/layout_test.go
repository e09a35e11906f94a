package pebblestore

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/sluicemq/sluice/internal/store"
)

// blobReads counts reads of blob files (separated values).
type blobReads struct{ n atomic.Int64 }

func (b *blobReads) MaybeError(op errorfs.Op) error {
	if strings.HasSuffix(op.Path, ".blob") && (op.Kind == errorfs.OpFileRead || op.Kind == errorfs.OpFileReadAt) {
		b.n.Add(1)
	}
	return nil
}

func (b *blobReads) String() string { return "blobReads" }

// fillIndexed puts n messages of q with records of size bytes and an index
// entry each, in unsynced batches of 500 and a synced last one.
func fillIndexed(t testing.TB, s *Store, q store.QueueID, n int, size int) {
	t.Helper()
	var b store.Batch
	rng := rand.NewChaCha8([32]byte{byte(q)})
	for seq := uint64(1); seq <= uint64(n); seq++ {
		rec := make([]byte, size)
		rng.Read(rec) // incompressible
		b.PutIndexed(q, seq, rec, fmt.Appendf(nil, "index entry of %d", seq))
		if seq%500 == 0 || seq == uint64(n) {
			if err := s.Apply(&b, seq == uint64(n)); err != nil {
				t.Fatal(err)
			}
			b.Reset()
		}
	}
}

func TestScanIndexReadsNoRecords(t *testing.T) {
	mem := vfs.NewMem()
	s := open(t, "/data", testOptions(mem))
	const n = 5000
	fillIndexed(t, s, 1, n, 2048)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	reads := &blobReads{}
	s = open(t, "/data", testOptions(errorfs.Wrap(mem, reads))) // the WAL replay flushes the rest
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	reads.n.Store(0)
	got := 0
	if err := s.ScanIndex(1, 1, func(seq uint64, idx []byte) bool {
		if string(idx) != fmt.Sprintf("index entry of %d", seq) {
			t.Fatalf("index entry of %d = %q", seq, idx)
		}
		got++
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if got != n {
		t.Fatalf("ScanIndex gave %d entries, want %d", got, n)
	}
	if r := reads.n.Load(); r != 0 {
		t.Fatalf("ScanIndex read blob files %d times, want 0", r)
	}
	// The counter works: reading the records does read blob files.
	if got, _, _ := countMessages(t, s, 1, 1); got != n {
		t.Fatalf("Scan gave %d records", n)
	}
	if reads.n.Load() == 0 {
		t.Fatal("Scan of 10 MB of records read no blob file; are values separated?")
	}
}

// TestDrainedQueueGivesBackDisk fills a queue with 50k x 1 KiB records,
// acks them all in order, and checks that once the compactor has run the
// blob files holding the records are gone.
func TestDrainedQueueGivesBackDisk(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, testOptions(nil))
	const n = 50000
	fillIndexed(t, s, 1, n, 1024)
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	full := dirSize(t, dir)
	if blobs := countFiles(t, dir, ".blob"); blobs == 0 {
		t.Fatal("no blob file after filling 50 MB of records")
	}
	var b store.Batch
	for seq := uint64(1); seq <= n; seq++ {
		b.DeleteMessage(1, seq)
		if seq%500 == 0 {
			b.SetFloor(1, seq+1)
			mustApply(t, s, &b, seq == n)
			b.Reset()
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for s.Stats().Compactions == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the drained queue was never compacted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	blobs, after := countFiles(t, dir, ".blob"), dirSize(t, dir)
	t.Logf("directory %d bytes full, %d after the drain; %d blob files left", full, after, blobs)
	if full < n*1024 || blobs != 0 || after > 1<<20 {
		t.Fatalf("after draining: %d blob files, %d bytes left (%d full); want none and under 1 MiB", blobs, after, full)
	}
}

func countFiles(t *testing.T, dir, suffix string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, pebbleDir, "*"+suffix))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

// dirSize returns the bytes of the files in dir but Pebble's WAL files,
// which it recycles: a few memtables' worth stay whatever the data.
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && filepath.Ext(path) != ".log" {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// BenchmarkScanIndex times a restart's index scan of a 20k backlog with
// records of several sizes; with records separated its cost should not grow
// with their size.
func BenchmarkScanIndex(b *testing.B) {
	for _, size := range []int{256, 1024, 8192} {
		b.Run(fmt.Sprint(size, "B"), func(b *testing.B) {
			mem := vfs.NewMem()
			s, err := Open("/data", testOptions(mem))
			if err != nil {
				b.Fatal(err)
			}
			fillIndexed(b, s, 1, 20000, size)
			if err := s.db.Flush(); err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			for b.Loop() {
				if err := s.ScanIndex(1, 1, func(uint64, []byte) bool { return true }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestGrowingQueueFlushesDoNotOverlap fills one queue across many memtable
// flushes and checks that Pebble never had to rewrite it: the flushed
// sstables of a growing queue cover disjoint key ranges, so they form one
// L0 sublevel or move down without a rewrite.
func TestGrowingQueueFlushesDoNotOverlap(t *testing.T) {
	o := testOptions(vfs.NewMem())
	o.MemTableSize = 1 << 20
	s := open(t, "/data", o)
	fillIndexed(t, s, 1, 30000, 1024) // about 30 memtables
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	m := s.db.Metrics()
	var flushed, compacted uint64
	for _, l := range m.Levels {
		// (BlobBytesCompacted of L0 counts the flushes' blob files again.)
		flushed += l.TableBytesFlushed + l.BlobBytesFlushed
		compacted += l.TableBytesCompacted
	}
	t.Logf("flushes %d, compactions %d (%d move), L0 sublevels %d, bytes flushed %d, compacted %d",
		m.Flush.Count, m.Compact.Count, m.Compact.MoveCount, m.Levels[0].Sublevels, flushed, compacted)
	if m.Flush.Count < 10 {
		t.Fatalf("%d flushes; the test needs many", m.Flush.Count)
	}
	if m.Levels[0].Sublevels > 1 || compacted > flushed/100 {
		t.Fatalf("L0 has %d sublevels and compactions wrote %d bytes for %d flushed; want one sublevel and little rewriting",
			m.Levels[0].Sublevels, compacted, flushed)
	}
}

// TestCorruptBlobReported damages a blob file (separated records) and
// checks that reading the records reports store.ErrCorrupt while the index
// entries, kept in the sstables, still read.
func TestCorruptBlobReported(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, testOptions(nil))
	fillIndexed(t, s, 1, 5000, 2048)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	blobs, _ := filepath.Glob(filepath.Join(dir, pebbleDir, "*.blob"))
	if len(blobs) == 0 {
		t.Fatal("no blob file")
	}
	for _, path := range blobs {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for i := 100; i < len(data)/2; i += 997 {
			data[i] ^= 0x5a
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s = open(t, dir, testOptions(nil))
	entries := 0
	if err := s.ScanIndex(1, 1, func(uint64, []byte) bool { entries++; return true }); err != nil || entries != 5000 {
		t.Fatalf("ScanIndex over damaged blob files: %d entries, %v; want 5000, nil", entries, err)
	}
	err := s.Scan(1, 1, func(uint64, []byte) bool { return true })
	t.Logf("error: %q", err)
	if !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Scan of damaged blob files: %v, want ErrCorrupt naming %s", err, dir)
	}
}
