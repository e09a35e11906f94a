package pebblestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/sluicemq/sluice/internal/store"
)

func open(t *testing.T, dir string, o Options) *Store {
	t.Helper()
	s, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustApply(t *testing.T, s *Store, b *store.Batch, sync bool) {
	t.Helper()
	if err := s.Apply(b, sync); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func countMessages(t *testing.T, s *Store, q store.QueueID, from uint64) (n int, first, last uint64) {
	t.Helper()
	if err := s.Scan(q, from, func(seq uint64, _ []byte) bool {
		if n == 0 {
			first = seq
		}
		n, last = n+1, seq
		return true
	}); err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return n, first, last
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, testOptions(nil))
	var b store.Batch
	for seq := uint64(1); seq <= 10000; seq++ {
		b.PutMessage(3, seq, fmt.Appendf(nil, "m%d", seq))
	}
	b.PutState(3, 9999, []byte("st"))
	b.PutDelay(12345, 3, 10000)
	b.PutMeta("queue/orders", []byte("def"))
	mustApply(t, s, &b, true)
	b.Reset()
	for seq := uint64(1); seq <= 5000; seq++ {
		b.DeleteMessage(3, seq)
	}
	b.SetFloor(3, 5001)
	mustApply(t, s, &b, true)
	if got := s.Stats().RangeDeletes; got != 1 {
		t.Fatalf("RangeDeletes = %d after the floor moved 5000, want 1", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, dir, testOptions(nil))
	if f, err := s.Floor(3); err != nil || f != 5001 {
		t.Fatalf("Floor after reopen = %d, %v; want 5001", f, err)
	}
	if n, first, last := countMessages(t, s, 3, 5001); n != 5000 || first != 5001 || last != 10000 {
		t.Fatalf("after reopen: %d messages %d..%d, want 5000 messages 5001..10000", n, first, last)
	}
	if v, err := s.GetMeta("queue/orders"); err != nil || string(v) != "def" {
		t.Fatalf("GetMeta after reopen = %q, %v", v, err)
	}
	var delays int
	s.ScanDelays(0, func(due int64, q store.QueueID, seq uint64) bool {
		delays++
		return due == 12345 && q == 3 && seq == 10000
	})
	if delays != 1 {
		t.Fatalf("delay entries after reopen = %d, want 1", delays)
	}
	// The cleared mark was persisted: a small further advance does not
	// range-delete again from seq 0.
	b.Reset()
	b.DeleteMessage(3, 5001)
	b.SetFloor(3, 5002)
	mustApply(t, s, &b, false)
	if got := s.Stats().RangeDeletes; got != 0 {
		t.Fatalf("RangeDeletes after reopen and a floor move of 1 = %d, want 0", got)
	}
}

func TestSecondOpenFails(t *testing.T) {
	for _, tt := range []struct {
		name string
		fs   vfs.FS
		dir  string
	}{
		{"os", nil, t.TempDir()},
		{"mem", vfs.NewMem(), "/data"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t, tt.dir, testOptions(tt.fs))
			_, err := Open(tt.dir, testOptions(tt.fs))
			if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), tt.dir) {
				t.Fatalf("second Open = %v, want ErrLocked naming %s", err, tt.dir)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2, err := Open(tt.dir, testOptions(tt.fs))
			if err != nil {
				t.Fatalf("Open after Close: %v", err)
			}
			s2.Close()
		})
	}
}

func TestFormatFile(t *testing.T) {
	tests := []struct {
		name    string
		content string // "" removes FORMAT
		want    error
		mention string
	}{
		{"newer", "sluice-store-format 5\n", ErrFormat, "format 5"},
		{"older", "sluice-store-format 2\n", ErrFormat, "older Sluice"},
		{"oldest", "sluice-store-format 1\n", ErrFormat, "older Sluice"},
		{"garbage", "hello", store.ErrCorrupt, "FORMAT"},
		{"missing", "", store.ErrCorrupt, "FORMAT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, testOptions(nil))
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, formatFile)
			if got, _ := os.ReadFile(path); string(got) != "sluice-store-format 4\n" {
				t.Fatalf("FORMAT = %q", got)
			}
			var err error
			if tt.content == "" {
				err = os.Remove(path)
			} else {
				err = os.WriteFile(path, []byte(tt.content), 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
			_, err = Open(dir, testOptions(nil))
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("Open = %v, want %v mentioning %q", err, tt.want, tt.mention)
			}
			// The failed Open released the lock.
			if _, err := lockDir(vfs.Default, dir); err != nil {
				t.Fatalf("lock after a failed Open: %v", err)
			}
		})
	}
}

func TestCorruptTableReported(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, testOptions(nil))
	var b store.Batch
	for seq := uint64(1); seq <= 20000; seq++ {
		b.PutMessage(1, seq, fmt.Appendf(nil, "message body %d %s", seq, strings.Repeat("x", 100)))
	}
	mustApply(t, s, &b, true)
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	tables, _ := filepath.Glob(filepath.Join(dir, pebbleDir, "*.sst"))
	if len(tables) == 0 {
		t.Fatal("no sstable after a flush")
	}
	data, err := os.ReadFile(tables[0])
	if err != nil {
		t.Fatal(err)
	}
	for i := 100; i < len(data)/2; i += 997 { // damage data blocks
		data[i] ^= 0x5a
	}
	if err := os.WriteFile(tables[0], data, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, testOptions(nil))
	if err == nil {
		t.Cleanup(func() { s.Close() })
		err = s.Scan(1, 0, func(uint64, []byte) bool { return true })
	}
	t.Logf("error: %q", err)
	if !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("reading a damaged table: %v, want ErrCorrupt naming %s", err, dir)
	}
}

func TestDrainedQueueIsCompacted(t *testing.T) {
	o := testOptions(vfs.NewMem())
	o.RangeDeleteEvery, o.CompactEvery = 1000, 1000
	s := open(t, "/data", o)
	var b store.Batch
	const n = 5000
	for seq := uint64(1); seq <= n; seq++ {
		b.PutMessage(1, seq, make([]byte, 512))
		b.PutMessage(2, seq, make([]byte, 512)) // not drained: never compacted
	}
	mustApply(t, s, &b, true)
	for seq := uint64(1); seq <= n; seq += 100 {
		b.Reset()
		for i := seq; i < seq+100; i++ {
			b.DeleteMessage(1, i)
		}
		b.SetFloor(1, seq+100)
		b.SetFloor(2, 1)
		mustApply(t, s, &b, false)
	}
	if got := s.Stats().RangeDeletes; got != 5 {
		t.Fatalf("RangeDeletes = %d, want 5", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Compactions != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("Compactions = %d after the queue drained, want 1", s.Stats().Compactions)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n, _, _ := countMessages(t, s, 1, 0); n != 0 {
		t.Fatalf("drained queue holds %d messages", n)
	}
	if n, _, _ := countMessages(t, s, 2, 1); n != 5000 {
		t.Fatalf("other queue holds %d messages, want 5000", n)
	}
}

// A queue whose acks were floor moves only (the broker skips the point
// deletes of messages below the floor), each shorter than RangeDeleteEvery,
// loses the records below its floor once it has drained.
func TestDrainedQueueAckedByFloorIsCleared(t *testing.T) {
	o := testOptions(vfs.NewMem())
	o.RangeDeleteEvery, o.CompactEvery = 1000, 1
	s := open(t, "/data", o)
	var b store.Batch
	const n = 300
	for seq := uint64(1); seq <= n; seq++ {
		b.PutMessage(1, seq, make([]byte, 512))
		b.PutState(1, seq, []byte{1})
	}
	mustApply(t, s, &b, true)
	for seq := uint64(1); seq <= n; seq += 50 {
		b.Reset()
		b.SetFloor(1, seq+50)
		mustApply(t, s, &b, false)
	}
	left := func() int {
		return countKeys(t, s.db, msgQueueStart(1), msgQueueEnd(1)) +
			countKeys(t, s.db, queueKey(prefixState, 1, 0), queueEnd(prefixState, 1))
	}
	deadline := time.Now().Add(10 * time.Second)
	for left() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d message and state keys left below the floor of a drained queue", left())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if f, err := s.Floor(1); err != nil || f != n+1 {
		t.Fatalf("Floor = %d, %v; want %d", f, err, n+1)
	}
}
