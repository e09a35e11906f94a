package memstore

import "github.com/sluicemq/sluice/internal/store"

// GetBody returns a copy of a shared body, or store.ErrNotFound.
func (s *MemStore) GetBody(id uint64) ([]byte, error) {
	b, err := s.body(id)
	return clone(b.data), err
}

// BodyRefs returns the refs a shared body was put with, or store.ErrNotFound.
func (s *MemStore) BodyRefs(id uint64) ([]store.BodyRef, error) {
	b, err := s.body(id)
	return append([]store.BodyRef(nil), b.refs...), err
}

func (s *MemStore) body(id uint64) (body, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return body{}, store.ErrClosed
	}
	b, ok := s.bodies.get(id)
	if !ok {
		return body{}, store.ErrNotFound
	}
	return b, nil
}

// LastBodyID returns the highest id of a body present, or 0.
func (s *MemStore) LastBodyID() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, store.ErrClosed
	}
	id, _ := s.bodies.last()
	return id, nil
}

// SweepBodies deletes the bodies from id from on that no live message
// refers to (see store.Bodies).
func (s *MemStore) SweepBodies(from uint64, max int) (next uint64, deleted int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, 0, store.ErrClosed
	}
	limit := s.bodies.len()
	if max > 0 {
		limit = max
	}
	batch := s.bodies.collect(nil, from, false, limit+1)
	if len(batch) > limit {
		next = batch[limit].key
		batch = batch[:limit]
	}
	for _, e := range batch {
		if !s.referencedLocked(e.val.refs) {
			s.bodies.delete(e.key)
			deleted++
		}
	}
	return next, deleted, nil
}

func (s *MemStore) referencedLocked(refs []store.BodyRef) bool {
	for _, r := range refs {
		if r.Seq < s.floors[r.Queue] {
			continue
		}
		if t := s.msgs[r.Queue]; t != nil {
			if _, ok := t.get(r.Seq); ok {
				return true
			}
		}
	}
	return false
}
