package storetest

import (
	"errors"
	"slices"
	"sync"

	"github.com/sluicemq/sluice/internal/store"
)

// AppliedOp is one op as a Recording received it: in which apply (counted
// from 1), synced or not.
type AppliedOp struct {
	Apply int
	Sync  bool
	Op    store.Op
}

// ErrInjected is what a Recording told to Fail answers.
var ErrInjected = errors.New("storetest: injected store failure")

// Recording wraps a store for tests of write ordering: it logs every op
// applied through it, in order, and can hold applies until released or
// fail them.
type Recording struct {
	store.Store
	// Entered is told, without blocking, when an apply starts.
	Entered chan struct{}

	mu   sync.Mutex
	log  []AppliedOp
	n    int
	hold chan struct{}
	fail bool
}

// NewRecording returns a Recording over inner.
func NewRecording(inner store.Store) *Recording {
	return &Recording{Store: inner, Entered: make(chan struct{}, 1)}
}

// Hold makes every apply wait until release is closed; nil stops holding.
func (s *Recording) Hold(release chan struct{}) {
	s.mu.Lock()
	s.hold = release
	s.mu.Unlock()
}

// Fail makes every apply fail with ErrInjected (on) or pass (off).
func (s *Recording) Fail(on bool) {
	s.mu.Lock()
	s.fail = on
	s.mu.Unlock()
}

func (s *Recording) record(b *store.Batch, sync bool) error {
	select {
	case s.Entered <- struct{}{}:
	default:
	}
	s.mu.Lock()
	hold := s.hold
	s.mu.Unlock()
	if hold != nil {
		<-hold
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return ErrInjected
	}
	s.n++
	for _, op := range b.Ops {
		s.log = append(s.log, AppliedOp{s.n, sync, op})
	}
	return nil
}

// Apply implements store.Store.
func (s *Recording) Apply(b *store.Batch, sync bool) error {
	if err := s.record(b, sync); err != nil {
		return err
	}
	return s.Store.Apply(b, sync)
}

// ApplyAsync implements store.Store.
func (s *Recording) ApplyAsync(b *store.Batch) (func() error, error) {
	if err := s.record(b, true); err != nil {
		return nil, err
	}
	return s.Store.ApplyAsync(b)
}

// Ops returns the ops applied so far, in order.
func (s *Recording) Ops() []AppliedOp {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// Applies counts the applies that passed.
func (s *Recording) Applies() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}
