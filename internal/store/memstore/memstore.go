// Package memstore is an in-memory store.Store for tests and for brokers
// that keep nothing across restarts.
//
// Every keyspace is an ordered table in memory; nothing is written to disk,
// so Apply's sync flag has no effect. Apply validates the whole batch and then
// applies it under one lock, so a batch is atomic: readers see all of it or
// none of it. Scans read in chunks and do not hold the lock while calling fn,
// so fn may call the store (a scan is not a snapshot across chunks).
//
// A MemStore owns no goroutines and is safe for concurrent use.
package memstore

import (
	"cmp"
	"strings"
	"sync"

	"github.com/sluicemq/sluice/internal/store"
)

// scanChunk is how many entries a scan copies out under the lock at a time.
const scanChunk = 256

type delayKey struct {
	due int64
	q   store.QueueID
	seq uint64
}

func compareDelay(a, b delayKey) int {
	if c := cmp.Compare(a.due, b.due); c != 0 {
		return c
	}
	if c := cmp.Compare(a.q, b.q); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

// MemStore is an in-memory store.Store.
type MemStore struct {
	mu     sync.RWMutex
	closed bool
	msgs   map[store.QueueID]*table[uint64, []byte]
	index  map[store.QueueID]*table[uint64, []byte]
	states map[store.QueueID]*table[uint64, []byte]
	floors map[store.QueueID]uint64
	delays *table[delayKey, struct{}]
	meta   *table[string, []byte]
	bodies *table[uint64, body]
}

// body is a shared body and the refs it was put with.
type body struct {
	data []byte
	refs []store.BodyRef
}

var (
	_ store.Store  = (*MemStore)(nil)
	_ store.Bodies = (*MemStore)(nil)
)

// New returns an empty MemStore.
func New() *MemStore {
	return &MemStore{
		msgs:   make(map[store.QueueID]*table[uint64, []byte]),
		index:  make(map[store.QueueID]*table[uint64, []byte]),
		states: make(map[store.QueueID]*table[uint64, []byte]),
		floors: make(map[store.QueueID]uint64),
		delays: newTable[delayKey, struct{}](compareDelay),
		meta:   newTable[string, []byte](strings.Compare),
		bodies: newTable[uint64, body](cmp.Compare[uint64]),
	}
}

// Apply applies b atomically. sync is ignored: nothing is durable.
// ApplyAsync applies b at once; there is nothing to wait for in memory.
func (s *MemStore) ApplyAsync(b *store.Batch) (func() error, error) {
	if err := s.Apply(b, true); err != nil {
		return nil, err
	}
	return func() error { return nil }, nil
}

func (s *MemStore) Apply(b *store.Batch, sync bool) error {
	if err := b.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	for _, op := range b.Ops {
		s.applyLocked(op)
	}
	return nil
}

func (s *MemStore) applyLocked(op store.Op) {
	switch op.Kind {
	case store.OpPutMessage:
		queueTable(s.msgs, op.Queue).put(op.Seq, clone(op.Value))
		if op.Index != nil {
			queueTable(s.index, op.Queue).put(op.Seq, clone(op.Index))
		}
	case store.OpDeleteMessage:
		for _, m := range []map[store.QueueID]*table[uint64, []byte]{s.msgs, s.index} {
			if t := m[op.Queue]; t != nil {
				t.delete(op.Seq)
			}
		}
	case store.OpDeleteRange:
		for _, m := range []map[store.QueueID]*table[uint64, []byte]{s.msgs, s.index, s.states} {
			if t := m[op.Queue]; t != nil {
				t.deleteRange(op.Seq, op.End)
			}
		}
	case store.OpPutState:
		queueTable(s.states, op.Queue).put(op.Seq, clone(op.Value))
	case store.OpDeleteState:
		if t := s.states[op.Queue]; t != nil {
			t.delete(op.Seq)
		}
	case store.OpPutDelay:
		s.delays.put(delayKey{op.Due, op.Queue, op.Seq}, struct{}{})
	case store.OpDeleteDelay:
		s.delays.delete(delayKey{op.Due, op.Queue, op.Seq})
	case store.OpSetFloor:
		// Everything below the floor is gone: a caller need not delete
		// what it acked below it one by one.
		for _, m := range []map[store.QueueID]*table[uint64, []byte]{s.msgs, s.index, s.states} {
			if t := m[op.Queue]; t != nil {
				t.deleteRange(s.floors[op.Queue], op.Seq)
			}
		}
		s.floors[op.Queue] = op.Seq
	case store.OpDropQueue:
		delete(s.msgs, op.Queue)
		delete(s.index, op.Queue)
		delete(s.states, op.Queue)
		delete(s.floors, op.Queue)
	case store.OpPutMeta:
		s.meta.put(op.Key, clone(op.Value))
	case store.OpDeleteMeta:
		s.meta.delete(op.Key)
	case store.OpPutBody:
		s.bodies.put(op.Seq, body{clone(op.Value), append([]store.BodyRef(nil), op.Refs...)})
	}
}

func queueTable(m map[store.QueueID]*table[uint64, []byte], q store.QueueID) *table[uint64, []byte] {
	t := m[q]
	if t == nil {
		t = newTable[uint64, []byte](cmp.Compare[uint64])
		m[q] = t
	}
	return t
}

// clone copies b; a nil or empty value is stored as an empty, non-nil slice.
func clone(b []byte) []byte {
	return append(make([]byte, 0, len(b)), b...)
}

// Scan calls fn for the queue's messages with seq >= from in seq order.
func (s *MemStore) Scan(q store.QueueID, from uint64, fn func(seq uint64, rec []byte) bool) error {
	return s.scanQueue(s.msgs, q, from, fn)
}

// ScanIndex calls fn for the queue's index entries with seq >= from in seq
// order.
func (s *MemStore) ScanIndex(q store.QueueID, from uint64, fn func(seq uint64, idx []byte) bool) error {
	return s.scanQueue(s.index, q, from, fn)
}

// ScanState calls fn for the queue's state entries in seq order.
func (s *MemStore) ScanState(q store.QueueID, fn func(seq uint64, state []byte) bool) error {
	return s.scanQueue(s.states, q, 0, fn)
}

func (s *MemStore) scanQueue(m map[store.QueueID]*table[uint64, []byte], q store.QueueID, from uint64, fn func(uint64, []byte) bool) error {
	var buf []entry[uint64, []byte]
	after := false
	for {
		s.mu.RLock()
		if s.closed {
			s.mu.RUnlock()
			return store.ErrClosed
		}
		buf = buf[:0]
		if t := m[q]; t != nil {
			buf = t.collect(buf, from, after, scanChunk)
		}
		s.mu.RUnlock()
		for _, e := range buf {
			if !fn(e.key, e.val) {
				return nil
			}
		}
		if len(buf) < scanChunk {
			return nil
		}
		from, after = buf[len(buf)-1].key, true
	}
}

// Get returns a copy of one message record, or store.ErrNotFound.
func (s *MemStore) Get(q store.QueueID, seq uint64) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	if t := s.msgs[q]; t != nil {
		if v, ok := t.get(seq); ok {
			return clone(v), nil
		}
	}
	return nil, store.ErrNotFound
}

// LastSeq returns the highest seq present in the queue, or 0.
func (s *MemStore) LastSeq(q store.QueueID) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, store.ErrClosed
	}
	if t := s.msgs[q]; t != nil {
		if seq, ok := t.last(); ok {
			return seq, nil
		}
	}
	return 0, nil
}

// Floor returns the queue's ack floor, or 0.
func (s *MemStore) Floor(q store.QueueID) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, store.ErrClosed
	}
	return s.floors[q], nil
}

// ScanDelays calls fn for delay entries with due >= from in due order.
func (s *MemStore) ScanDelays(from int64, fn func(due int64, q store.QueueID, seq uint64) bool) error {
	var buf []entry[delayKey, struct{}]
	start, after := delayKey{due: from}, false
	for {
		s.mu.RLock()
		if s.closed {
			s.mu.RUnlock()
			return store.ErrClosed
		}
		buf = s.delays.collect(buf[:0], start, after, scanChunk)
		s.mu.RUnlock()
		for _, e := range buf {
			if !fn(e.key.due, e.key.q, e.key.seq) {
				return nil
			}
		}
		if len(buf) < scanChunk {
			return nil
		}
		start, after = buf[len(buf)-1].key, true
	}
}

// GetMeta returns a copy of a metadata value, or store.ErrNotFound.
func (s *MemStore) GetMeta(key string) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	if v, ok := s.meta.get(key); ok {
		return clone(v), nil
	}
	return nil, store.ErrNotFound
}

// ScanMeta calls fn for every metadata key with the prefix, in key order.
func (s *MemStore) ScanMeta(prefix string, fn func(key string, value []byte) bool) error {
	var buf []entry[string, []byte]
	start, after := prefix, false
	for {
		s.mu.RLock()
		if s.closed {
			s.mu.RUnlock()
			return store.ErrClosed
		}
		buf = s.meta.collect(buf[:0], start, after, scanChunk)
		s.mu.RUnlock()
		for _, e := range buf {
			if !strings.HasPrefix(e.key, prefix) || !fn(e.key, e.val) {
				return nil
			}
		}
		if len(buf) < scanChunk {
			return nil
		}
		start, after = buf[len(buf)-1].key, true
	}
}

// Close releases the store's memory. Further calls return store.ErrClosed.
func (s *MemStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.closed = true
	s.msgs, s.index, s.states, s.floors = nil, nil, nil, nil
	s.delays = newTable[delayKey, struct{}](compareDelay)
	s.meta = newTable[string, []byte](strings.Compare)
	return nil
}
