package broker

// The store fence. A store write that fails leaves the broker unsure what
// is on disk: the batch may be half there, the disk full or gone. Going on
// (log the error, drop the batch) loses acks, purges and moves without a
// word, and a publisher whose batch failed would be told nothing. So the
// first store write error fences the broker instead:
//
//   - every later write fails at once (no store call): publishes are
//     nacked, declares, purges, deletes and edits answer ResourceError
//     (AMQP 506, HTTP 503) with the reason;
//   - reads and deliveries of what the queues hold go on; acks are kept in
//     memory only, so a restart redelivers them (at-least-once);
//   - one error line says what happened and what to do, and Fenced feeds
//     the alarm the API reports (/api/health/checks/alarms, /api/nodes,
//     /metrics).
//
// The write pipeline, through which every store write goes, writes
// through a fencingStore, which owns the fence. The pebble store can also
// fence itself from a background failure; cmd/sluice passes that to
// Broker.FenceStore.

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/sluicemq/sluice/internal/store"
)

// storeFence records the failure that fenced the store; safe for
// concurrent use.
type storeFence struct {
	log *slog.Logger
	err atomic.Pointer[Error] // the error writes fail with, nil until fenced
}

// failed handles a store write error: it fences the store (once) unless
// the error says the batch was malformed or the store is closing, and
// returns the error the operation fails with.
func (f *storeFence) failed(op string, err error) error {
	if errors.Is(err, store.ErrInvalidBatch) || (errors.Is(err, store.ErrClosed) && !errors.Is(err, store.ErrFenced)) {
		return internalError(op, err)
	}
	if errors.Is(err, store.ErrNotCommitted) {
		// The cluster did not commit in time; this node's store is fine.
		return storeError(op, err)
	}
	f.trip(err)
	return f.check()
}

// trip fences the store after err; only the first call logs.
func (f *storeFence) trip(err error) {
	e := &Error{Code: ResourceError, Err: fmt.Errorf("%w: %w", errFenced, err),
		Reason: "the message store failed and the broker refuses writes until it is restarted: " + err.Error()}
	if f.err.CompareAndSwap(nil, e) {
		f.log.Error("message store failed: publishes are refused (nacked) and nothing more is written; "+
			"consumers can still drain the queues, their acks are kept in memory only; "+
			"free disk space or fix the disk (or restore the data directory), then restart the broker",
			"err", err)
	}
}

// check returns the fence's error, or nil when the store is not fenced.
func (f *storeFence) check() error {
	if e := f.err.Load(); e != nil {
		return e
	}
	return nil
}

// errFenced marks the fence's error.
var errFenced = errors.New("broker fenced after a store failure")

// storeError is the error an operation fails with after the store write
// for op failed: the fence's own (ResourceError) as it is, any other an
// internal error.
func storeError(op string, err error) error {
	if isFence(err) {
		return err
	}
	if errors.Is(err, store.ErrNotCommitted) {
		return &Error{Code: ResourceError, Err: err,
			Reason: op + ": the cluster did not commit the change in time (no majority of its nodes reachable); it may still take effect"}
	}
	return internalError(op, err)
}

// isFence reports whether err is the fence's, logged once already.
func isFence(err error) bool { return errors.Is(err, errFenced) }

// Fenced returns why the broker refuses writes after a store failure, or
// nil while it does not.
func (b *Broker) Fenced() error { return b.env.fence.check() }

// FenceStore fences the broker after a store failure the store met on its
// own (a background flush, say); the error should wrap store.ErrFenced.
func (b *Broker) FenceStore(err error) { b.env.fence.trip(err) }

// fencingStore is the store the write pipeline writes to: a write fails at
// once while the fence is up, and a failed write trips it.
type fencingStore struct {
	store.Store
	fence *storeFence
}

func (s fencingStore) Apply(b *store.Batch, sync bool) error {
	if err := s.fence.check(); err != nil {
		return err
	}
	if err := s.Store.Apply(b, sync); err != nil {
		return s.fence.failed("apply", err)
	}
	return nil
}

func (s fencingStore) ApplyAsync(b *store.Batch) (func() error, error) {
	if err := s.fence.check(); err != nil {
		return nil, err
	}
	wait, err := s.Store.ApplyAsync(b)
	if err != nil {
		return nil, s.fence.failed("apply", err)
	}
	return func() error {
		if err := wait(); err != nil {
			return s.fence.failed("sync", err)
		}
		return nil
	}, nil
}
