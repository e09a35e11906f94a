package broker

// Shared bodies: a publish routed to two or more durable queues writes its
// property list and body once (store.Bodies) and a small shared record in
// each queue that names it (records.SplitShared). Readers never see a shared
// record: sharedStore joins it with its body at the store's read side, so
// every reader (delivery, get, browse, recovery, dead letters, moves, edits)
// gets the whole record as before, and whatever writes a message elsewhere
// or rewrites it writes that whole record: the body's refs never grow, and
// an edit never changes the other queues' copy. The housekeeping loop
// sweeps bodies no queue refers to any more (see docs/decisions.md,
// "Shared bodies for fanout").

import (
	"errors"
	"time"

	"github.com/sluicemq/sluice/internal/records"
	"github.com/sluicemq/sluice/internal/store"
)

// A sweep round first deletes the consumed prefix of the bodies, in chunks
// of sweepChunk from the lowest, for as long as a chunk deletes any and for
// at most sweepPrefixTime: the queues consume in publish order, so that is
// where the garbage is, at any publish rate. Then it looks at sweepRolling
// bodies from a cursor that goes round all of them, for the rest (a body
// behind one a queue still holds). Neither reads the same live bodies again
// and again: a chunk that deletes nothing ends the first part.
const (
	sweepChunk      = 1024
	sweepRolling    = 4096
	sweepPrefixTime = 200 * time.Millisecond
)

// sharedBodies returns st's shared bodies, or nil where the broker does not
// use them: a store that has none, or a cluster, whose replicated writes
// carry whole records.
func sharedBodies(st store.Store, cluster Cluster) store.Bodies {
	if cluster != nil {
		return nil
	}
	b, _ := st.(store.Bodies)
	return b
}

// sharedStore is a store whose reads join shared records with their bodies.
type sharedStore struct {
	store.Store
	bodies store.Bodies
}

func (s sharedStore) Get(q store.QueueID, seq uint64) ([]byte, error) {
	rec, err := s.Store.Get(q, seq)
	if err != nil || !records.IsShared(rec) {
		return rec, err
	}
	return s.join(rec)
}

func (s sharedStore) Scan(q store.QueueID, from uint64, fn func(seq uint64, rec []byte) bool) error {
	var err error
	serr := s.Store.Scan(q, from, func(seq uint64, rec []byte) bool {
		if records.IsShared(rec) {
			if rec, err = s.join(rec); err != nil {
				return false
			}
		}
		return fn(seq, rec)
	})
	return errors.Join(serr, err)
}

// join returns the whole record of a shared one. A body missing is
// corruption: it is put with its records and swept only after them.
func (s sharedStore) join(shared []byte) ([]byte, error) {
	id, err := records.SharedBodyID(shared)
	if err != nil {
		return nil, err
	}
	body, err := s.bodies.GetBody(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, records.Corruptf("shared body %d of a record is missing", id)
	}
	if err != nil {
		return nil, err
	}
	return records.JoinShared(shared, body)
}

// bodySharing is the publishing side's part: the next body id and the
// buffers of the current batch's refs.
type bodySharing struct {
	bodies store.Bodies // nil: every record is written whole
	next   uint64
	// Of the sweep (housekeeping's goroutine): no body below low is
	// left, and the rolling part goes on at sweep.
	low, sweep uint64
}

func newBodySharing(bodies store.Bodies) (*bodySharing, error) {
	s := &bodySharing{bodies: bodies}
	if bodies == nil {
		return s, nil
	}
	last, err := bodies.LastBodyID()
	if err != nil {
		return nil, err
	}
	s.next = last + 1
	return s, nil
}

// shares reports whether a message for targets has its body shared: two
// or more durable targets.
func (s *bodySharing) shares(targets []*queue) bool {
	if s.bodies == nil {
		return false
	}
	n := 0
	for _, q := range targets {
		if q.durable {
			n++
		}
	}
	return n >= 2
}

// split cuts rec into the shared record its durable targets get and the
// body they share, under a new id; ok is false when rec is not split (it
// is then written whole).
func (s *bodySharing) split(rec []byte) (shared, body []byte, id uint64, ok bool) {
	shared, body, err := records.SplitShared(rec, s.next)
	if err != nil {
		return nil, nil, 0, false
	}
	id = s.next
	s.next++
	return shared, body, id, true
}

// sweepRound deletes bodies no queue refers to (housekeeping's goroutine
// only; see sweepChunk).
func (s *bodySharing) sweepRound() error {
	if s.bodies == nil {
		return nil
	}
	start := time.Now()
	for from := s.low; time.Since(start) < sweepPrefixTime; {
		next, deleted, err := s.bodies.SweepBodies(from, sweepChunk)
		if err != nil {
			return err
		}
		if next != 0 && deleted == sweepChunk {
			s.low = next // every body below next is gone: later sweeps seek past their tombstones
		}
		if next == 0 || deleted == 0 {
			break
		}
		from = next
	}
	next, _, err := s.bodies.SweepBodies(max(s.sweep, s.low), sweepRolling)
	if err != nil {
		return err
	}
	s.sweep = next
	return nil
}
