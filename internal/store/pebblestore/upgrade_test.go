package pebblestore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/sluicemq/sluice/internal/store"
)

// The format 3 directory v3Fixture writes: queue 1 holds v3Live messages,
// every one but each seventh with an index entry, and records of both
// sizes (inline and separated); queue 2 held v3Acked2+v3Live2 messages of
// which the first v3Acked2 were acked the way format 3 did it (a range
// delete per block below cleared, SingleDeletes above).
const (
	v3Live    = 3000
	v3Acked2  = 1500
	v3Cleared = 1024
	v3Live2   = 1500
)

func v3Record(q store.QueueID, seq uint64) []byte {
	pad := 10
	if seq%3 == 0 {
		pad = 600 // at least valueSeparation's MinimumSize
	}
	return fmt.Appendf(nil, "q%d seq %d %s", q, seq, strings.Repeat("r", pad))
}

func v3Index(q store.QueueID, seq uint64) []byte {
	if seq%7 == 0 {
		return nil
	}
	return fmt.Appendf(nil, "idx q%d %d", q, seq)
}

// v3Fixture builds a format 3 data directory in dir on fs with Pebble
// directly, in format 3's key layout.
func v3Fixture(t *testing.T, fs vfs.FS, dir string) {
	t.Helper()
	if err := makeDir(fs, dir); err != nil {
		t.Fatal(err)
	}
	if err := writeFormat(fs, dir, 3); err != nil {
		t.Fatal(err)
	}
	path := fs.PathJoin(dir, pebbleDir)
	if err := makeDir(fs, path); err != nil {
		t.Fatal(err)
	}
	db, err := pebble.Open(path, &pebble.Options{FS: fs, FormatMajorVersion: pebble.FormatNewest, MemTableSize: 1 << 20, Logger: quietPebble(t)})
	if err != nil {
		t.Fatal(err)
	}
	b := db.NewBatch()
	put := func(q store.QueueID, seq uint64) {
		if idx := v3Index(q, seq); idx != nil {
			b.Set(v3MsgKey(kindIndex, q, seq), idx, nil)
		}
		b.Set(v3MsgKey(kindRecord, q, seq), v3Record(q, seq), nil)
	}
	for seq := uint64(1); seq <= v3Live; seq++ {
		put(1, seq)
		if seq%5 == 0 {
			b.Set(queueKey(prefixState, 1, seq), fmt.Appendf(nil, "state %d", seq), nil)
		}
	}
	for seq := uint64(1); seq <= v3Acked2+v3Live2; seq++ {
		put(2, seq)
	}
	b.Set(delayKey(777, 1, 35), nil, nil)
	b.Set(metaKey("queue/orders"), []byte("def"), nil)
	if err := db.Apply(b, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil { // some of it in sstables, some in the WAL
		t.Fatal(err)
	}
	b = db.NewBatch()
	// Format 3's ack of queue 2's prefix: block 0 range-deleted, then
	// SingleDeletes up to the floor.
	b.DeleteRange(v3MsgKey(kindIndex, 2, 0), v3MsgKey(kindIndex, 2, v3Cleared), nil)
	b.DeleteRange(queueKey(prefixState, 2, 0), queueKey(prefixState, 2, v3Cleared), nil)
	for seq := uint64(v3Cleared); seq <= v3Acked2; seq++ {
		b.SingleDelete(v3MsgKey(kindIndex, 2, seq), nil)
		b.SingleDelete(v3MsgKey(kindRecord, 2, seq), nil)
	}
	b.Set(floorKey(2), floorState{floor: v3Acked2 + 1, cleared: v3Cleared}.encode(), nil)
	if err := db.Apply(b, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkUpgraded asserts that s holds exactly what v3Fixture wrote, in the
// format 4 layout.
func checkUpgraded(t *testing.T, s *Store) {
	t.Helper()
	queues := []struct {
		q           store.QueueID
		first, last uint64
		floor       uint64
	}{
		{1, 1, v3Live, 0},
		{2, v3Acked2 + 1, v3Acked2 + v3Live2, v3Acked2 + 1},
	}
	for _, tq := range queues {
		want := tq.first
		if err := s.Scan(tq.q, 0, func(seq uint64, rec []byte) bool {
			if seq != want || !bytes.Equal(rec, v3Record(tq.q, seq)) {
				t.Fatalf("queue %d: Scan gave seq %d %q, want seq %d %q", tq.q, seq, rec, want, v3Record(tq.q, want))
			}
			want++
			return true
		}); err != nil {
			t.Fatal(err)
		}
		if want != tq.last+1 {
			t.Fatalf("queue %d: Scan ended before seq %d, want %d", tq.q, want, tq.last+1)
		}
		want = tq.first
		if err := s.ScanIndex(tq.q, 0, func(seq uint64, idx []byte) bool {
			for v3Index(tq.q, want) == nil {
				want++
			}
			if seq != want || !bytes.Equal(idx, v3Index(tq.q, seq)) {
				t.Fatalf("queue %d: ScanIndex gave seq %d %q, want seq %d", tq.q, seq, idx, want)
			}
			want++
			return true
		}); err != nil {
			t.Fatal(err)
		}
		if want < tq.last {
			t.Fatalf("queue %d: ScanIndex ended at %d, want %d", tq.q, want, tq.last)
		}
		if got, err := s.LastSeq(tq.q); err != nil || got != tq.last {
			t.Fatalf("queue %d: LastSeq = %d, %v; want %d", tq.q, got, err, tq.last)
		}
		if got, err := s.Floor(tq.q); err != nil || got != tq.floor {
			t.Fatalf("queue %d: Floor = %d, %v; want %d", tq.q, got, err, tq.floor)
		}
		if rec, err := s.Get(tq.q, tq.last); err != nil || !bytes.Equal(rec, v3Record(tq.q, tq.last)) {
			t.Fatalf("queue %d: Get(%d) = %q, %v", tq.q, tq.last, rec, err)
		}
	}
	states := 0
	if err := s.ScanState(1, func(seq uint64, st []byte) bool {
		if seq%5 != 0 || string(st) != fmt.Sprintf("state %d", seq) {
			t.Fatalf("state of seq %d = %q", seq, st)
		}
		states++
		return true
	}); err != nil || states != v3Live/5 {
		t.Fatalf("ScanState: %d states, %v; want %d", states, err, v3Live/5)
	}
	var delays []string
	if err := s.ScanDelays(0, func(due int64, q store.QueueID, seq uint64) bool {
		delays = append(delays, fmt.Sprint(due, q, seq))
		return true
	}); err != nil || len(delays) != 1 || delays[0] != "777 1 35" {
		t.Fatalf("ScanDelays = %v, %v", delays, err)
	}
	if v, err := s.GetMeta("queue/orders"); err != nil || string(v) != "def" {
		t.Fatalf("GetMeta = %q, %v", v, err)
	}
	if n := countKeys(t, s.db, []byte{prefixMessageV3}, keyspaceEnd(prefixMessageV3)); n != 0 {
		t.Fatalf("%d format 3 keys left after the upgrade", n)
	}
	if got := readFile(t, s.fs, s.fs.PathJoin(s.dir, formatFile)); got != "sluice-store-format 4\n" {
		t.Fatalf("FORMAT = %q after the upgrade", got)
	}
}

// quietPebble is a Pebble logger for tests that open Pebble directly.
func quietPebble(t *testing.T) pebble.Logger {
	return pebbleLogger{log: slog.New(slog.DiscardHandler), fail: func(e *fatalError) { t.Errorf("pebble: %v", e) }}
}

func countKeys(t *testing.T, db *pebble.DB, lo, hi []byte) int {
	t.Helper()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		n++
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	return n
}

func readFile(t *testing.T, fs vfs.FS, path string) string {
	t.Helper()
	f, err := fs.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// upgradeOptions are testOptions with small upgrade batches, so that the
// fixture takes several.
func upgradeOptions(fs vfs.FS) Options {
	o := testOptions(fs)
	o.upgradeBatchMax = 1000
	return o
}

func TestUpgradeFromFormat3(t *testing.T) {
	fs := vfs.NewMem()
	v3Fixture(t, fs, "/data")
	o := upgradeOptions(fs)
	batches := 0
	o.upgradeBatchHook = func(n int) { batches = n }
	s := open(t, "/data", o)
	if batches < 5 {
		t.Fatalf("upgrade took %d batches; the fixture should need several", batches)
	}
	checkUpgraded(t, s)

	// The upgraded store works: ack queue 2 past its old range delete and
	// reopen.
	var b store.Batch
	for seq := uint64(v3Acked2 + 1); seq <= v3Acked2+v3Live2-10; seq++ {
		b.DeleteMessage(2, seq)
	}
	b.SetFloor(2, v3Acked2+v3Live2-9)
	b.PutIndexed(2, v3Acked2+v3Live2+1, []byte("new"), []byte("new idx"))
	mustApply(t, s, &b, true)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, "/data", testOptions(fs))
	if n, first, last := countMessages(t, s, 2, 0); n != 11 || first != v3Acked2+v3Live2-9 || last != v3Acked2+v3Live2+1 {
		t.Fatalf("queue 2 after acks and reopen: %d messages %d..%d", n, first, last)
	}
}

func TestUpgradeResumesAfterCrash(t *testing.T) {
	for _, crashAfter := range []int{1, 3} {
		t.Run(fmt.Sprint("after batch ", crashAfter), func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			v3Fixture(t, fs, "/data")
			var crashed *vfs.MemFS
			o := upgradeOptions(fs)
			o.upgradeBatchHook = func(n int) {
				if n == crashAfter {
					crashed = fs.CrashClone(vfs.CrashCloneCfg{})
				}
			}
			s := open(t, "/data", o)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if crashed == nil {
				t.Fatal("the upgrade never reached the crash point")
			}
			// The crash left a half-moved directory, still marked format 3.
			if got := readFile(t, crashed, "/data/"+formatFile); got != "sluice-store-format 3\n" {
				t.Fatalf("FORMAT after the crash = %q", got)
			}
			oldKeys, newKeys := countRaw(t, crashed)
			if oldKeys == 0 || newKeys == 0 {
				t.Fatalf("after the crash: %d old and %d new keys, want some of each", oldKeys, newKeys)
			}
			checkUpgraded(t, open(t, "/data", testOptions(crashed)))
		})
	}
}

// countRaw counts the format 3 and format 4 message keys of the database
// on fs, read-only.
func countRaw(t *testing.T, fs vfs.FS) (oldKeys, newKeys int) {
	t.Helper()
	db, err := pebble.Open("/data/"+pebbleDir, &pebble.Options{FS: fs, ReadOnly: true, Logger: quietPebble(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	oldKeys = countKeys(t, db, []byte{prefixMessageV3}, keyspaceEnd(prefixMessageV3))
	newKeys = countKeys(t, db, []byte{prefixMessage}, keyspaceEnd(prefixMessage))
	return oldKeys, newKeys
}

func TestUpgradeRefusesDamagedKeys(t *testing.T) {
	fs := vfs.NewMem()
	v3Fixture(t, fs, "/data")
	db, err := pebble.Open("/data/"+pebbleDir, &pebble.Options{FS: fs, Logger: quietPebble(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set([]byte("m-short"), []byte("x"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = Open("/data", testOptions(fs))
	if !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Open with a damaged format 3 key = %v, want ErrCorrupt", err)
	}
	if got := readFile(t, fs, "/data/"+formatFile); got != "sluice-store-format 3\n" {
		t.Fatalf("FORMAT after a failed upgrade = %q", got)
	}
}
