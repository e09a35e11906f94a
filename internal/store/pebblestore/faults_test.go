package pebblestore

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/sluicemq/sluice/internal/store"
)

// walFault injects err into WAL writes or syncs while it is armed.
type walFault struct {
	armed atomic.Bool
	kinds []errorfs.OpKind
	err   error
	hits  atomic.Int64
}

func (f *walFault) MaybeError(op errorfs.Op) error {
	if !f.armed.Load() || !strings.HasSuffix(op.Path, ".log") {
		return nil
	}
	for _, k := range f.kinds {
		if op.Kind == k {
			f.hits.Add(1)
			return &os.PathError{Op: "inject", Path: op.Path, Err: f.err}
		}
	}
	return nil
}

func (f *walFault) String() string { return "walFault" }

// batchOf returns batch i: three messages of queue 1 and a meta key, so a
// partly applied batch would show.
func batchOf(i int) *store.Batch {
	var b store.Batch
	for j := range 3 {
		seq := uint64(i*3 + j + 1)
		b.PutMessage(1, seq, fmt.Appendf(nil, "batch %d msg %d", i, j))
	}
	b.PutMeta(fmt.Sprintf("batch/%06d", i), []byte("done"))
	return &b
}

// batchPresence reports how much of batch i the store holds: "all",
// "none" or "partial".
func batchPresence(t *testing.T, s *Store, i int) string {
	t.Helper()
	found := 0
	for j := range 3 {
		_, err := s.Get(1, uint64(i*3+j+1))
		switch {
		case err == nil:
			found++
		case !errors.Is(err, store.ErrNotFound):
			t.Fatalf("Get: %v", err)
		}
	}
	if _, err := s.GetMeta(fmt.Sprintf("batch/%06d", i)); err == nil {
		found++
	} else if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetMeta: %v", err)
	}
	switch found {
	case 0:
		return "none"
	case 4:
		return "all"
	}
	return "partial"
}

func TestWriteErrorFencesStore(t *testing.T) {
	tests := []struct {
		name  string
		kinds []errorfs.OpKind
		err   error
	}{
		{"ENOSPC on write", []errorfs.OpKind{errorfs.OpFileWrite, errorfs.OpFileWriteAt}, syscall.ENOSPC},
		{"EIO on write", []errorfs.OpKind{errorfs.OpFileWrite, errorfs.OpFileWriteAt}, syscall.EIO},
		{"ENOSPC on sync", []errorfs.OpKind{errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo}, syscall.ENOSPC},
		{"EIO on sync", []errorfs.OpKind{errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo}, syscall.EIO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := vfs.NewMem()
			fault := &walFault{kinds: tt.kinds, err: tt.err}
			s, err := Open("/data", testOptions(errorfs.Wrap(mem, fault)))
			if err != nil {
				t.Fatal(err)
			}
			const good = 20
			for i := range good {
				mustApply(t, s, batchOf(i), true)
			}
			fault.armed.Store(true)
			err = s.Apply(batchOf(good), true)
			if err == nil || !errors.Is(err, tt.err) {
				t.Fatalf("Apply with %v injected = %v, want an error wrapping it", tt.err, err)
			}
			if fault.hits.Load() == 0 {
				t.Fatal("the fault was never hit")
			}
			// Fenced: every write says so rather than take a batch that
			// may or may not be durable; reads of what was synced go on.
			if err := s.Apply(batchOf(good+1), true); !errors.Is(err, store.ErrFenced) || !errors.Is(err, tt.err) {
				t.Fatalf("Apply after the write error = %v, want ErrFenced wrapping %v", err, tt.err)
			}
			if err := s.Fenced(); !errors.Is(err, tt.err) {
				t.Fatalf("Fenced() = %v, want an error wrapping %v", err, tt.err)
			}
			if got := batchPresence(t, s, good-1); got != "all" {
				t.Fatalf("read of a synced batch after the fence: %s, want all", got)
			}
			_ = s.Close() // may report the WAL error again; must not hang or panic
			fault.armed.Store(false)

			s = open(t, "/data", testOptions(mem))
			for i := range good {
				if got := batchPresence(t, s, i); got != "all" {
					t.Fatalf("synced batch %d after reopen: %s, want all", i, got)
				}
			}
			if got := batchPresence(t, s, good); got == "partial" {
				t.Fatalf("the failed batch is partly present after reopen")
			}
		})
	}
}

func TestCrashKeepsSyncedBatches(t *testing.T) {
	for seed := range int64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			s, err := Open("/data", testOptions(fs))
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(uint64(seed), 1))
			const batches = 300
			var synced []int
			for i := range batches {
				sync := rng.IntN(3) == 0
				mustApply(t, s, batchOf(i), sync)
				if sync {
					synced = append(synced, i)
				}
			}
			crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rng})
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = open(t, "/data", testOptions(crashed))
			isSynced := make(map[int]bool)
			for _, i := range synced {
				isSynced[i] = true
			}
			lastPresent := -1
			counts := map[string]int{}
			for i := range batches {
				got := batchPresence(t, s, i)
				counts[got]++
				switch {
				case isSynced[i] && got != "all":
					t.Fatalf("synced batch %d after the crash: %s, want all", i, got)
				case got == "partial":
					t.Fatalf("unsynced batch %d is partly present after the crash", i)
				case got == "all":
					lastPresent = i
				}
			}
			// Batches are replayed in order: what survives is a prefix.
			for i := range lastPresent {
				if got := batchPresence(t, s, i); got != "all" {
					t.Fatalf("batch %d is missing but the later batch %d survived", i, lastPresent)
				}
			}
			t.Logf("%d synced; after crash: %v", len(synced), counts)
		})
	}
}

// bigBatch is a batch of about 64 KiB, so a few dozen fill a 1 MiB
// memtable and make Pebble rotate its WAL.
func bigBatch(i int) *store.Batch {
	var b store.Batch
	b.PutMessage(2, uint64(i+1), make([]byte, 64<<10))
	return &b
}

// TestWALFailureNeverPanics keeps writing after a failed WAL sync, through
// the memtable rotations that made Pebble panic on the log's sticky error:
// every write after the failure is refused, none panics, and the broker
// hears of the fence once.
func TestWALFailureNeverPanics(t *testing.T) {
	mem := vfs.NewMem()
	fault := &walFault{kinds: []errorfs.OpKind{errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo,
		errorfs.OpFileWrite, errorfs.OpFileWriteAt}, err: syscall.ENOSPC}
	opts := testOptions(errorfs.Wrap(mem, fault))
	opts.MemTableSize = 1 << 20
	var fences atomic.Int64
	opts.OnFence = func(err error) {
		fences.Add(1)
		if !errors.Is(err, store.ErrFenced) || !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("OnFence(%v), want ErrFenced wrapping ENOSPC", err)
		}
	}
	s, err := Open("/data", opts)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, bigBatch(0), true)
	fault.armed.Store(true)
	refused := 0
	for i := 1; i < 100; i++ {
		wait, err := s.ApplyAsync(bigBatch(i))
		if err == nil {
			err = wait()
		}
		if err == nil {
			t.Fatalf("batch %d reported durable after the WAL failed", i)
		}
		refused++
	}
	if got := fences.Load(); got != 1 {
		t.Fatalf("OnFence called %d times, want once", got)
	}
	if _, err := s.Get(2, 1); err != nil {
		t.Fatalf("Get of a synced record after the fence: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close after the fence: %v", err)
	}
	t.Logf("%d batches refused", refused)
}

// TestDeletedDirectoryFences deletes the data directory under an open
// store: the next synced write must fail (its WAL file is gone, so it
// would not survive), not be reported durable.
func TestDeletedDirectoryFences(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	opts := testOptions(nil)
	opts.MemTableSize = 1 << 20
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, batchOf(0), true)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	err = s.Apply(batchOf(1), true)
	if !errors.Is(err, store.ErrFenced) {
		t.Fatalf("Apply after the directory was deleted = %v, want ErrFenced", err)
	}
	for i := 2; i < 100; i++ { // through WAL rotations: no panic
		if err := s.Apply(bigBatch(i), true); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("Apply %d = %v, want ErrFenced", i, err)
		}
	}
	if got := batchPresence(t, s, 0); got != "all" {
		t.Fatalf("read after the fence: batch 0 is %s, want all", got)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close after the fence: %v", err)
	}
}

// TestWALCreateFailureFences fails the create of the next WAL (a rotation
// in a deleted or full directory), which Pebble panics on: the store
// fences and the batch that needed the new WAL is refused.
func TestWALCreateFailureFences(t *testing.T) {
	mem := vfs.NewMem()
	fault := &walFault{kinds: []errorfs.OpKind{errorfs.OpCreate, errorfs.OpReuseForWrite}, err: syscall.ENOENT}
	opts := testOptions(errorfs.Wrap(mem, fault))
	opts.MemTableSize = 1 << 20
	s, err := Open("/data", opts)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, bigBatch(0), true)
	fault.armed.Store(true)
	var failed error
	for i := 1; i < 100 && failed == nil; i++ {
		failed = s.Apply(bigBatch(i), true)
	}
	if !errors.Is(failed, store.ErrFenced) || !errors.Is(failed, syscall.ENOENT) {
		t.Fatalf("Apply across a failed WAL create = %v, want ErrFenced wrapping ENOENT", failed)
	}
	if fault.hits.Load() == 0 {
		t.Fatal("no WAL create was attempted")
	}
	if _, err := s.Get(2, 1); err != nil {
		t.Fatalf("Get after the fence: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close after the fence: %v", err)
	}
}
