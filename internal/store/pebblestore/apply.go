package pebblestore

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/sluicemq/sluice/internal/store"
)

// Apply commits b atomically: pebble.Sync when sync is set, else NoSync.
// SetFloor ops may add a range delete of the acked prefix (see the package
// doc). Apply calls are serialized.
func (s *Store) Apply(b *store.Batch, sync bool) error {
	if err := b.Validate(); err != nil {
		return err
	}
	if err := s.enterWrite(); err != nil {
		return err
	}
	defer s.exit()
	wo := pebble.NoSync
	if sync {
		wo = pebble.Sync
	}
	pb, err := s.commit(b, func(pb *pebble.Batch) error { return s.db.Apply(pb, wo) })
	if pb != nil {
		pb.Close()
	}
	return err
}

// ApplyAsync commits b atomically and returns once it is visible, before
// its WAL sync; wait blocks until the batch is durable. Pebble syncs the
// WAL in commit order and groups the syncs of batches that queue up, so a
// caller can apply its next batch while this one syncs.
//
// It uses Pebble's ApplyNoSyncWait, which Pebble marks experimental; it is
// the API CockroachDB pipelines its own log writes with.
func (s *Store) ApplyAsync(b *store.Batch) (wait func() error, err error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	if err := s.enterWrite(); err != nil {
		return nil, err
	}
	applied := false
	pb, err := s.commit(b, func(pb *pebble.Batch) error {
		err := s.db.ApplyNoSyncWait(pb, pebble.Sync)
		applied = err == nil
		return err
	})
	if err != nil {
		if applied {
			// Fenced after Pebble took the batch: its WAL sync is still
			// pending and will touch the batch, so wait for it (fenceFS
			// makes it return at once) before the batch goes back to
			// Pebble's pool.
			_ = pb.SyncWait()
		}
		if pb != nil {
			pb.Close()
		}
		s.exit()
		return nil, err
	}
	return func() error {
		defer s.exit()
		err := pb.SyncWait()
		pb.Close()
		if err := s.Fenced(); err != nil {
			return fmt.Errorf("apply: %w", err)
		}
		if err != nil {
			// fenceFS keeps WAL failures from Pebble; anything else
			// that fails a sync leaves the store unusable as well.
			s.fence(fmt.Errorf("wait for sync: %w", err))
			return s.wrap("apply", err)
		}
		return nil
	}, nil
}

// commit builds b's Pebble batch and hands it to apply, serialized with
// every other commit, then updates the floor cache and the read-ahead
// windows. It returns the Pebble batch (nil if none was made) for the
// caller to close (after any sync wait).
func (s *Store) commit(b *store.Batch, apply func(*pebble.Batch) error) (*pebble.Batch, error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()

	// Sized up front: a batch grown by doubling copies every record it
	// holds each time (a fanout message is one record per queue).
	pb := s.db.NewBatchWithSize(batchSize(b))
	// Point writes go through w, which adds each run of them between range
	// deletes to pb in key order (see pointRun). Its buffers are the
	// store's, reused from commit to commit under applyMu: Pebble copies
	// keys and values into its batch.
	w := &s.points
	w.pb = pb
	defer w.reset()
	// Floor states changed by this batch, installed in s.floors only once the
	// batch is committed.
	changed := make(map[store.QueueID]floorState)
	var touched []store.QueueID // queues whose floor moved or that were dropped
	rangeDeletes := 0
	for i, op := range b.Ops {
		var err error
		switch op.Kind {
		case store.OpSetFloor:
			var cleared bool
			cleared, err = s.setFloorLocked(w, op.Queue, op.Seq, changed)
			if cleared {
				rangeDeletes++
			}
			touched = append(touched, op.Queue)
		case store.OpDropQueue:
			if err = w.flush(); err == nil {
				err = s.dropQueue(pb, op.Queue)
			}
			changed[op.Queue] = floorState{}
			touched = append(touched, op.Queue)
		case store.OpDeleteRange:
			if err = w.flush(); err == nil {
				err = deleteQueueRange(pb, op.Queue, op.Seq, op.End)
			}
		default:
			err = addOp(w, op)
		}
		if err != nil {
			return pb, s.wrap(fmt.Sprintf("apply: op %d", i), err)
		}
	}
	if err := w.flush(); err != nil {
		return pb, s.wrap("apply", err)
	}
	err := apply(pb)
	if err := s.Fenced(); err != nil {
		// fenceFS hid a failed WAL write or sync from Pebble (or Pebble
		// reported one through Logger.Fatalf) and apply returned nil: the
		// batch may be visible but is not durable.
		return pb, fmt.Errorf("apply: %w", err)
	}
	if err != nil {
		return pb, s.wrap("apply", err)
	}
	s.ahead.forget(b)
	for q, f := range changed {
		s.floors[q] = f
	}
	s.rangeDeletes.Add(uint64(rangeDeletes))
	for _, q := range touched {
		s.compactor.notify(q)
	}
	return pb, nil
}

// addOp adds one point op to w.
func addOp(w *pointRun, op store.Op) error {
	switch op.Kind {
	case store.OpPutMessage:
		if op.Index != nil {
			w.add(pointSet, w.msgKey(kindIndex, op.Queue, op.Seq), op.Index)
		}
		w.add(pointSet, w.msgKey(kindRecord, op.Queue, op.Seq), op.Value)
	case store.OpDeleteMessage:
		// The message and index keys were written once (or never, for an
		// index entry), so a SingleDelete removes each and its tombstone
		// vanishes with the put at the next compaction.
		w.add(pointSingleDelete, w.msgKey(kindIndex, op.Queue, op.Seq), nil)
		w.add(pointSingleDelete, w.msgKey(kindRecord, op.Queue, op.Seq), nil)
	case store.OpPutState:
		w.add(pointSet, w.stateKey(op.Queue, op.Seq), op.Value)
	case store.OpDeleteState:
		w.add(pointDelete, w.stateKey(op.Queue, op.Seq), nil)
	case store.OpPutDelay:
		w.add(pointSet, delayKey(op.Due, op.Queue, op.Seq), nil)
	case store.OpDeleteDelay:
		w.add(pointDelete, delayKey(op.Due, op.Queue, op.Seq), nil)
	case store.OpPutMeta:
		w.add(pointSet, metaKey(op.Key), op.Value)
	case store.OpDeleteMeta:
		w.add(pointDelete, metaKey(op.Key), nil)
	case store.OpPutBody:
		w.add(pointSet, bodyKey(bodyKindRefs, op.Seq), encodeBodyRefs(op.Refs))
		w.add(pointSet, bodyKey(bodyKindData, op.Seq), op.Value)
	default:
		return fmt.Errorf("%w: unexpected op kind %d", store.ErrInvalidBatch, op.Kind)
	}
	return nil
}

type pointKind uint8

const (
	pointSet pointKind = iota
	pointDelete
	pointSingleDelete
)

type pointOp struct {
	kind       pointKind
	key, value []byte
}

// pointRun gathers point writes and adds them to a Pebble batch sorted by
// key (stably: writes of one key keep their order), before the next range
// delete and at the end. Pebble inserts a batch's keys into its memtable
// one by one, and an insert right after its neighbour reuses the previous
// search; in the order the broker writes them (message, index and state
// keys of one seq after another, then the next seq) every insert searched
// the whole memtable. Range deletes are barriers: a point write never
// crosses one, so what a range delete covers is unchanged.
type pointRun struct {
	pb    *pebble.Batch
	ops   []pointOp
	arena []byte // the keys of ops, cut from one buffer instead of one allocation each
}

// batchSize estimates the bytes of b's Pebble batch: every op's values and
// keys, with room for their headers.
func batchSize(b *store.Batch) int {
	n := 64
	for _, op := range b.Ops {
		n += len(op.Value) + len(op.Index) + len(op.Key) + 2*(msgKeyLen+8) + bodyRefLen*len(op.Refs)
	}
	return n
}

// keyBuf returns n bytes of the arena for a key.
func (w *pointRun) keyBuf(n int) []byte {
	if cap(w.arena)-len(w.arena) < n {
		// Keys cut before stay in the old buffer, which they keep alive.
		w.arena = make([]byte, 0, max(16<<10, 2*cap(w.arena)))
	}
	at := len(w.arena)
	w.arena = w.arena[:at+n]
	return w.arena[at : at+n : at+n]
}

func (w *pointRun) msgKey(kind byte, q store.QueueID, seq uint64) []byte {
	return putMsgKey(w.keyBuf(msgKeyLen), kind, q, seq)
}

func (w *pointRun) stateKey(q store.QueueID, seq uint64) []byte {
	return putQueueKey(w.keyBuf(queueKeyLen), prefixState, q, seq)
}

// reset forgets the batch and the ops, keeping the buffers for the next
// commit (applyMu held).
func (w *pointRun) reset() {
	clear(w.ops)
	w.ops = w.ops[:0]
	w.pb = nil
	if cap(w.arena) > 1<<20 {
		w.arena = nil // a huge batch's buffer is not kept
	}
	w.arena = w.arena[:0]
}

func (w *pointRun) add(kind pointKind, key, value []byte) {
	w.ops = append(w.ops, pointOp{kind, key, value})
}

// flush adds the gathered writes to the batch in key order.
func (w *pointRun) flush() error {
	cmp := func(a, b pointOp) int { return bytes.Compare(a.key, b.key) }
	if !slices.IsSortedFunc(w.ops, cmp) {
		slices.SortStableFunc(w.ops, cmp)
	}
	for _, op := range w.ops {
		var err error
		switch op.kind {
		case pointSet:
			err = w.pb.Set(op.key, op.value, nil)
		case pointDelete:
			err = w.pb.Delete(op.key, nil)
		case pointSingleDelete:
			err = w.pb.SingleDelete(op.key, nil)
		}
		if err != nil {
			return err
		}
	}
	clear(w.ops)
	w.ops = w.ops[:0]
	return nil
}

// deleteQueueRange range-deletes the queue's messages, index entries and
// states with from <= seq < end: one range in each keyspace.
func deleteQueueRange(pb *pebble.Batch, q store.QueueID, from, end uint64) error {
	if from >= end {
		return nil
	}
	if err := pb.DeleteRange(queueKey(prefixState, q, from), queueKey(prefixState, q, end), nil); err != nil {
		return err
	}
	return pb.DeleteRange(msgSeqStart(q, from), msgSeqStart(q, end), nil)
}

// setFloorLocked writes q's new floor and, when the floor has moved at least
// RangeDeleteEvery past the last range delete, range-deletes the acked prefix
// in the same batch (after the point writes gathered so far).
// It reports whether it added a range delete.
func (s *Store) setFloorLocked(w *pointRun, q store.QueueID, floor uint64, changed map[store.QueueID]floorState) (bool, error) {
	f, ok := changed[q]
	if !ok {
		var err error
		if f, err = s.floorStateLocked(q); err != nil {
			return false, err
		}
	}
	f.floor = floor
	cleared := false
	if floor >= f.cleared && floor-f.cleared >= s.opts.RangeDeleteEvery {
		if err := w.flush(); err != nil {
			return false, err
		}
		if err := deleteQueueRange(w.pb, q, f.cleared, floor); err != nil {
			return false, err
		}
		f.cleared = floor
		cleared = true
	}
	changed[q] = f
	w.add(pointSet, floorKey(q), f.encode())
	return cleared, nil
}

// clearAcked range-deletes q's acked prefix that no SetFloor cleared yet
// (one moves less than RangeDeleteEvery at a time), for a queue that has
// drained: its acked messages need not have been deleted one by one, and
// without this the last few thousand of them would stay on disk until the
// floor moves on.
func (s *Store) clearAcked(q store.QueueID) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	f, err := s.floorStateLocked(q)
	if err != nil || f.cleared >= f.floor {
		return err
	}
	pb := s.db.NewBatch()
	defer pb.Close()
	if err := deleteQueueRange(pb, q, f.cleared, f.floor); err != nil {
		return err
	}
	f.cleared = f.floor
	if err := pb.Set(floorKey(q), f.encode(), nil); err != nil {
		return err
	}
	if err := s.db.Apply(pb, pebble.NoSync); err != nil {
		return s.wrap("clear acked prefix", err)
	}
	if fatal := s.fatal.Load(); fatal != nil {
		return fmt.Errorf("clear acked prefix: %w", fatal)
	}
	s.floors[q] = f
	s.rangeDeletes.Add(1)
	return nil
}

// floorStateLocked returns q's floor state from the cache or the database.
func (s *Store) floorStateLocked(q store.QueueID) (floorState, error) {
	if f, ok := s.floors[q]; ok {
		return f, nil
	}
	v, closer, err := s.db.Get(floorKey(q))
	if errors.Is(err, pebble.ErrNotFound) {
		return floorState{}, nil
	}
	if err != nil {
		return floorState{}, err
	}
	defer closer.Close()
	return decodeFloor(q, v)
}

// dropQueue removes all of q's messages, index entries, states and its
// floor.
func (s *Store) dropQueue(pb *pebble.Batch, q store.QueueID) error {
	if err := pb.DeleteRange(msgQueueStart(q), msgQueueEnd(q), nil); err != nil {
		return err
	}
	if err := pb.DeleteRange(queueKey(prefixState, q, 0), queueEnd(prefixState, q), nil); err != nil {
		return err
	}
	return pb.Delete(floorKey(q), nil)
}
