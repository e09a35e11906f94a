package pebblestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/sluicemq/sluice/internal/store"
)

// fanoutBatch puts body id (1 KiB, so value separation moves it to a blob
// file) with a record naming it in each queue at seq.
func fanoutBatch(id, seq uint64, queues ...store.QueueID) *store.Batch {
	var b store.Batch
	var refs []store.BodyRef
	for _, q := range queues {
		b.PutIndexed(q, seq, binary.BigEndian.AppendUint64(nil, id), []byte{1})
		refs = append(refs, store.BodyRef{Queue: q, Seq: seq})
	}
	body := make([]byte, 1024)
	binary.BigEndian.PutUint64(body, id)
	b.PutBody(id, body, refs)
	return &b
}

// checkEveryRecordHasItsBody fails if a record of q names a body that is
// gone, and returns how many records it saw.
func checkEveryRecordHasItsBody(t *testing.T, s *Store, q store.QueueID) int {
	t.Helper()
	from, _ := s.Floor(q)
	var ids []uint64
	if err := s.Scan(q, from, func(_ uint64, rec []byte) bool {
		ids = append(ids, binary.BigEndian.Uint64(rec))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		body, err := s.GetBody(id)
		if err != nil || binary.BigEndian.Uint64(body) != id {
			t.Fatalf("queue %d: record names body %d: %v", q, id, err)
		}
	}
	return len(ids)
}

// TestSweepRacesPublishes sweeps while a publisher fans out to two queues
// and two consumers ack them by floor and by point deletes: a consumer
// always finds the body of what it consumes, and once both queues are
// drained a sweep leaves no body behind.
func TestSweepRacesPublishes(t *testing.T) {
	o := testOptions(vfs.NewMem())
	o.RangeDeleteEvery, o.CompactEvery = 64, 64
	s := open(t, "/data", o)
	const n = 3000
	var (
		wg        sync.WaitGroup
		published = make([]chan uint64, 2)
		stop      = make(chan struct{})
		errs      = make(chan error, 4)
	)
	for i := range published {
		published[i] = make(chan uint64, n)
	}
	wg.Add(1)
	go func() { // publisher
		defer wg.Done()
		for seq := uint64(1); seq <= n; seq++ {
			if err := s.Apply(fanoutBatch(seq, seq, 1, 2), false); err != nil {
				errs <- err
				return
			}
			for _, c := range published {
				c <- seq
			}
		}
	}()
	for i, q := range []store.QueueID{1, 2} {
		wg.Add(1)
		go func() { // consumer: queue 1 acks by floor, queue 2 deletes each message
			defer wg.Done()
			for range n {
				seq := <-published[i]
				if _, err := s.GetBody(seq); err != nil {
					errs <- fmt.Errorf("queue %d seq %d: body: %w", q, seq, err)
					return
				}
				var b store.Batch
				if q == 2 {
					b.DeleteMessage(q, seq)
				}
				b.SetFloor(q, seq+1)
				if err := s.Apply(&b, false); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	sweeps := make(chan int)
	go func() { // sweeper
		swept := 0
		for {
			select {
			case <-stop:
				sweeps <- swept
				return
			default:
			}
			_, d, err := s.SweepBodies(0, 500)
			if err != nil {
				errs <- err
			}
			swept += d
		}
	}()
	wg.Wait()
	close(stop)
	swept := <-sweeps
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	for {
		next, d, err := s.SweepBodies(0, 0)
		if err != nil || next != 0 {
			t.Fatalf("final sweep: %d, %v", next, err)
		}
		swept += d
		if d == 0 {
			break
		}
	}
	if swept != n {
		t.Fatalf("swept %d bodies in all, want %d", swept, n)
	}
	if id, err := s.LastBodyID(); err != nil || id != 0 {
		t.Fatalf("a body is left after both queues drained: last id %d, %v", id, err)
	}
}

// TestCrashKeepsBodiesWithRecords crashes a store that fans out, acks and
// sweeps, with unsynced writes partly lost: after the restart every record
// still has its body, every synced fanout is whole, and a sweep deletes
// exactly the bodies no queue refers to.
func TestCrashKeepsBodiesWithRecords(t *testing.T) {
	for seed := range int64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			o := testOptions(fs)
			o.RangeDeleteEvery, o.CompactEvery = 32, 32
			s, err := Open("/data", o)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(uint64(seed), 2))
			var synced []uint64
			floors := map[store.QueueID]uint64{1: 1, 2: 1, 3: 1}
			for seq := uint64(1); seq <= 600; seq++ {
				sync := rng.IntN(4) == 0
				mustApply(t, s, fanoutBatch(seq, seq, 1, 2, 3), sync)
				if sync {
					synced = append(synced, seq)
				}
				// Each queue acks a random distance behind, by floor.
				var b store.Batch
				for q, f := range floors {
					if f < seq && rng.IntN(3) == 0 {
						floors[q] = f + uint64(rng.IntN(int(seq-f)+1))
						b.SetFloor(q, floors[q])
					}
				}
				mustApply(t, s, &b, rng.IntN(8) == 0)
				if rng.IntN(50) == 0 {
					if _, _, err := s.SweepBodies(0, 0); err != nil {
						t.Fatal(err)
					}
				}
			}
			crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rng})
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = open(t, "/data", testOptions(crashed))
			live := 0
			for _, q := range []store.QueueID{1, 2, 3} {
				live += checkEveryRecordHasItsBody(t, s, q)
			}
			for _, seq := range synced {
				for _, q := range []store.QueueID{1, 2, 3} {
					floor, _ := s.Floor(q)
					if _, err := s.Get(q, seq); seq >= floor && err != nil {
						t.Fatalf("synced fanout %d: queue %d lost its record: %v", seq, q, err)
					}
				}
			}
			if _, _, err := s.SweepBodies(0, 0); err != nil {
				t.Fatal(err)
			}
			for _, q := range []store.QueueID{1, 2, 3} {
				checkEveryRecordHasItsBody(t, s, q)
			}
			// Every body left has a live ref.
			last, err := s.LastBodyID()
			if err != nil {
				t.Fatal(err)
			}
			kept := 0
			for id := uint64(1); id <= last; id++ {
				refs, err := s.BodyRefs(id)
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				kept++
				referenced := false
				for _, r := range refs {
					floor, _ := s.Floor(r.Queue)
					if _, err := s.Get(r.Queue, r.Seq); err == nil && r.Seq >= floor {
						referenced = true
					}
				}
				if !referenced {
					t.Fatalf("body %d kept by a sweep with no live ref %v", id, refs)
				}
			}
			t.Logf("%d synced fanouts; after the crash %d live records, %d bodies", len(synced), live, kept)
		})
	}
}
