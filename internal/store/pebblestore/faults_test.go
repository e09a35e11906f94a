package pebblestore

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
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
			// Fenced: every call says so rather than serving a batch that
			// may or may not be durable.
			if _, err := s.Get(1, 1); !errors.Is(err, store.ErrClosed) || !errors.Is(err, tt.err) {
				t.Fatalf("Get after the write error = %v, want ErrClosed wrapping %v", err, tt.err)
			}
			if err := s.Apply(batchOf(good+1), true); !errors.Is(err, store.ErrClosed) {
				t.Fatalf("Apply after the write error = %v, want ErrClosed", err)
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
