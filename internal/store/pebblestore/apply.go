package pebblestore

import (
	"errors"
	"fmt"

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
	if err := s.enter(); err != nil {
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
	if err := s.enter(); err != nil {
		return nil, err
	}
	pb, err := s.commit(b, func(pb *pebble.Batch) error { return s.db.ApplyNoSyncWait(pb, pebble.Sync) })
	if err != nil {
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
		if f := s.fatal.Load(); f != nil {
			return fmt.Errorf("apply: %w", f)
		}
		if err != nil {
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

	pb := s.db.NewBatch()
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
			cleared, err = s.setFloorLocked(pb, op.Queue, op.Seq, changed)
			if cleared {
				rangeDeletes++
			}
			touched = append(touched, op.Queue)
		case store.OpDropQueue:
			err = s.dropQueue(pb, op.Queue)
			changed[op.Queue] = floorState{}
			touched = append(touched, op.Queue)
		default:
			err = addOp(pb, op)
		}
		if err != nil {
			return pb, s.wrap(fmt.Sprintf("apply: op %d", i), err)
		}
	}
	err := apply(pb)
	if f := s.fatal.Load(); f != nil {
		// Pebble reports a failed WAL write or sync through Logger.Fatalf and
		// returns nil: the batch may be visible but is not durable.
		return pb, fmt.Errorf("apply: %w", f)
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

// addOp adds one plain op to pb.
func addOp(pb *pebble.Batch, op store.Op) error {
	switch op.Kind {
	case store.OpPutMessage:
		if op.Index != nil {
			if err := pb.Set(queueKey(prefixIndex, op.Queue, op.Seq), op.Index, nil); err != nil {
				return err
			}
		}
		return pb.Set(queueKey(prefixMessage, op.Queue, op.Seq), op.Value, nil)
	case store.OpDeleteMessage:
		// The message and index keys were written once (or never, for an
		// index entry), so a SingleDelete removes each and its tombstone
		// vanishes with the put at the next compaction.
		if err := pb.SingleDelete(queueKey(prefixIndex, op.Queue, op.Seq), nil); err != nil {
			return err
		}
		return pb.SingleDelete(queueKey(prefixMessage, op.Queue, op.Seq), nil)
	case store.OpDeleteRange:
		return deleteQueueRange(pb, op.Queue, op.Seq, op.End)
	case store.OpPutState:
		return pb.Set(queueKey(prefixState, op.Queue, op.Seq), op.Value, nil)
	case store.OpDeleteState:
		return pb.Delete(queueKey(prefixState, op.Queue, op.Seq), nil)
	case store.OpPutDelay:
		return pb.Set(delayKey(op.Due, op.Queue, op.Seq), nil, nil)
	case store.OpDeleteDelay:
		return pb.Delete(delayKey(op.Due, op.Queue, op.Seq), nil)
	case store.OpPutMeta:
		return pb.Set(metaKey(op.Key), op.Value, nil)
	case store.OpDeleteMeta:
		return pb.Delete(metaKey(op.Key), nil)
	}
	return fmt.Errorf("%w: unexpected op kind %d", store.ErrInvalidBatch, op.Kind)
}

// deleteQueueRange range-deletes the queue's messages, index entries and
// states with from <= seq < end.
func deleteQueueRange(pb *pebble.Batch, q store.QueueID, from, end uint64) error {
	if from >= end {
		return nil
	}
	for _, p := range queuePrefixes {
		if err := pb.DeleteRange(queueKey(p, q, from), queueKey(p, q, end), nil); err != nil {
			return err
		}
	}
	return nil
}

// setFloorLocked writes q's new floor and, when the floor has moved at least
// RangeDeleteEvery past the last range delete, range-deletes the acked prefix
// in the same batch.
// It reports whether it added a range delete.
func (s *Store) setFloorLocked(pb *pebble.Batch, q store.QueueID, floor uint64, changed map[store.QueueID]floorState) (bool, error) {
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
		if err := deleteQueueRange(pb, q, f.cleared, floor); err != nil {
			return false, err
		}
		f.cleared = floor
		cleared = true
	}
	changed[q] = f
	return cleared, pb.Set(floorKey(q), f.encode(), nil)
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
	for _, p := range queuePrefixes {
		if err := pb.DeleteRange(queueKey(p, q, 0), queueEnd(p, q), nil); err != nil {
			return err
		}
	}
	return pb.Delete(floorKey(q), nil)
}
