package pebblestore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/sluicemq/sluice/internal/store"
)

// Shared bodies (store.Bodies) live in their own keyspace, each body's refs
// right before its bytes, as a message's index entry is before its record:
//
//	'b' | id u64 | kind u8   (10 bytes)   kind 0: refs, kind 1: body
//
// A sweep iterates the refs keys and skips the body keys without reading
// them (value separation keeps large bodies in blob files).
const (
	bodyKeyLen   = 1 + 8 + 1
	bodyKindRefs = 0
	bodyKindData = 1
	bodyRefLen   = 8 + 8 // queue u64 | seq u64, per ref
)

var _ store.Bodies = (*Store)(nil)

func bodyKey(kind byte, id uint64) []byte {
	k := make([]byte, bodyKeyLen)
	k[0] = prefixBody
	binary.BigEndian.PutUint64(k[1:], id)
	k[9] = kind
	return k
}

func decodeBodyKey(k []byte) (id uint64, kind byte, err error) {
	if len(k) != bodyKeyLen || k[0] != prefixBody || k[9] > bodyKindData {
		return 0, 0, fmt.Errorf("%w: body key %x", store.ErrCorrupt, k)
	}
	return binary.BigEndian.Uint64(k[1:]), k[9], nil
}

func isBodyDataKey(k []byte) bool { return len(k) == bodyKeyLen && k[9] == bodyKindData }

// encodeBodyRefs is the refs value: queue u64 | seq u64 per ref.
func encodeBodyRefs(refs []store.BodyRef) []byte {
	v := make([]byte, 0, bodyRefLen*len(refs))
	for _, r := range refs {
		v = binary.BigEndian.AppendUint64(v, uint64(r.Queue))
		v = binary.BigEndian.AppendUint64(v, r.Seq)
	}
	return v
}

func decodeBodyRefs(id uint64, v []byte) ([]store.BodyRef, error) {
	if len(v) == 0 || len(v)%bodyRefLen != 0 {
		return nil, fmt.Errorf("%w: refs of body %d: length %d, not a positive multiple of %d", store.ErrCorrupt, id, len(v), bodyRefLen)
	}
	refs := make([]store.BodyRef, len(v)/bodyRefLen)
	for i := range refs {
		refs[i] = store.BodyRef{
			Queue: store.QueueID(binary.BigEndian.Uint64(v[i*bodyRefLen:])),
			Seq:   binary.BigEndian.Uint64(v[i*bodyRefLen+8:]),
		}
	}
	return refs, nil
}

// GetBody returns a copy of a shared body, or store.ErrNotFound.
func (s *Store) GetBody(id uint64) ([]byte, error) {
	return s.get("get body", bodyKey(bodyKindData, id))
}

// BodyRefs returns the refs a shared body was put with, or store.ErrNotFound.
func (s *Store) BodyRefs(id uint64) ([]store.BodyRef, error) {
	v, err := s.get("get body refs", bodyKey(bodyKindRefs, id))
	if err != nil {
		return nil, err
	}
	refs, err := decodeBodyRefs(id, v)
	if err != nil {
		return nil, s.wrap("get body refs", err)
	}
	return refs, nil
}

// LastBodyID returns the highest id of a body present, or 0.
func (s *Store) LastBodyID() (uint64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.exit()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixBody}, UpperBound: keyspaceEnd(prefixBody), SkipPoint: isBodyDataKey})
	if err != nil {
		return 0, s.wrap("last body id", err)
	}
	defer it.Close()
	if !it.Last() {
		if err := it.Error(); err != nil {
			return 0, s.wrap("last body id", err)
		}
		return 0, nil
	}
	id, _, err := decodeBodyKey(it.Key())
	if err != nil {
		return 0, s.wrap("last body id", err)
	}
	return id, nil
}

// SweepBodies deletes the bodies from id from on that no live message
// refers to (see store.Bodies). It decides on one snapshot, in which a
// body and its records, put in one batch, are either both visible or
// neither; a ref found dead there stays dead, so the deletes, applied
// unsynced after the snapshot, never remove a body a record still needs.
func (s *Store) SweepBodies(from uint64, max int) (next uint64, deleted int, err error) {
	if err := s.enterWrite(); err != nil {
		return 0, 0, err
	}
	defer s.exit()
	snap := s.db.NewSnapshot()
	defer snap.Close()
	bodies, err := snap.NewIter(&pebble.IterOptions{LowerBound: bodyKey(bodyKindRefs, from), UpperBound: keyspaceEnd(prefixBody), SkipPoint: isBodyDataKey})
	if err != nil {
		return 0, 0, s.wrap("sweep bodies", err)
	}
	defer bodies.Close()
	// Message keys are only positioned on, never read: a record's value
	// (in a blob file) is not fetched.
	msgs, err := snap.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixMessage}, UpperBound: keyspaceEnd(prefixMessage)})
	if err != nil {
		return 0, 0, s.wrap("sweep bodies", err)
	}
	defer msgs.Close()
	floors := make(map[store.QueueID]uint64)
	live := func(r store.BodyRef) (bool, error) {
		floor, ok := floors[r.Queue]
		if !ok {
			f, err := snapFloor(snap, r.Queue)
			if err != nil {
				return false, err
			}
			floor, floors[r.Queue] = f, f
		}
		if r.Seq < floor {
			return false, nil
		}
		k := msgKey(kindRecord, r.Queue, r.Seq)
		return msgs.SeekGE(k) && string(msgs.Key()) == string(k), msgs.Error()
	}
	pb := s.db.NewBatch()
	defer pb.Close()
	seen := 0
	for valid := bodies.First(); valid; valid = bodies.Next() {
		id, _, err := decodeBodyKey(bodies.Key())
		if err != nil {
			return 0, 0, s.wrap("sweep bodies", err)
		}
		if max > 0 && seen == max {
			next = id
			break
		}
		seen++
		v, err := bodies.ValueAndErr()
		if err != nil {
			return 0, 0, s.wrap("sweep bodies", err)
		}
		refs, err := decodeBodyRefs(id, v)
		if err != nil {
			return 0, 0, s.wrap("sweep bodies", err)
		}
		referenced := false
		for _, r := range refs {
			if referenced, err = live(r); err != nil {
				return 0, 0, s.wrap("sweep bodies", err)
			} else if referenced {
				break
			}
		}
		if referenced {
			continue
		}
		// Plain deletes: an id may be put again once its body is gone
		// (LastBodyID), which a SingleDelete would not allow.
		if err := pb.Delete(bodyKey(bodyKindRefs, id), nil); err != nil {
			return 0, 0, s.wrap("sweep bodies", err)
		}
		if err := pb.Delete(bodyKey(bodyKindData, id), nil); err != nil {
			return 0, 0, s.wrap("sweep bodies", err)
		}
		deleted++
	}
	if err := bodies.Error(); err != nil {
		return 0, 0, s.wrap("sweep bodies", err)
	}
	if deleted == 0 {
		return next, 0, nil
	}
	if err := s.db.Apply(pb, pebble.NoSync); err != nil {
		return 0, 0, s.wrap("sweep bodies", err)
	}
	if err := s.Fenced(); err != nil {
		return 0, 0, fmt.Errorf("sweep bodies: %w", err)
	}
	return next, deleted, nil
}

// snapFloor returns q's ack floor as the snapshot sees it.
func snapFloor(snap *pebble.Snapshot, q store.QueueID) (uint64, error) {
	v, closer, err := snap.Get(floorKey(q))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	f, err := decodeFloor(q, v)
	return f.floor, err
}
