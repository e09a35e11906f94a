package broker

// Write-behind of queue changes. A consumer draining a queue settles its
// deliveries one ack at a time; applying each ack's deletes and floor move
// as its own store batch, under the queue's lock, made the store the drain's
// bottleneck. Instead a queue hands its unsynced changes (deliveries' states,
// acks, floors, retry waits: never a message put) to the writeBehind, which
// a flusher goroutine applies in the order they were queued, many settles
// per batch.
//
// Guarantees, for every store write the broker makes (all go through the
// writeBehind, which wraps the store as env.st):
//
//   - Order: queued changes reach the store in the order they were queued,
//     and before any write applied after they were queued (Apply and
//     ApplyAsync first add the queued changes to their own batch). So an
//     ack is never applied before the put of its message (a message is
//     delivered only after its put was applied), floors never go back, and
//     a purge or a dead-letter move never overtakes an earlier change.
//   - Durability: a synced write (a persistent publish's group commit, a
//     purge, a declare) carries every change queued before it in the same
//     batch, so it is durable with it: a crash never brings back a message
//     whose ack was queued before a synced write returned (for example a
//     client's ack followed by a confirmed publish on the same connection).
//     Changes not yet followed by a synced write may be lost in a crash,
//     as unsynced applies always could: an acked message then comes back,
//     redelivered (at-least-once).
//   - Visibility: every read except Get applies the queued changes first.
//     Get reads message records, which queued changes never put, so it
//     goes straight to the store.
//
// The flusher is owned by the Broker: started by Open, stopped by Close
// after the commit loop, with a last flush. Changes queued after that are
// applied at once.

import (
	"log/slog"
	"sync"

	"github.com/sluicemq/sluice/internal/store"
)

// writeBehind wraps the broker's store; see the file comment.
type writeBehind struct {
	store.Store
	log   *slog.Logger
	fence storeFence    // fence.go: every write error trips it
	wake  chan struct{} // capacity 1: a pending flush request
	stop  chan struct{}
	wg    sync.WaitGroup

	// applyMu serializes applies through the writeBehind, so queued changes
	// reach the store in order. It guards merged and flushing. Nothing is
	// locked while it is held, except mu and the store's own locks.
	applyMu  sync.Mutex
	merged   store.Batch // scratch: queued changes followed by a caller's batch
	flushing store.Batch // scratch: queued changes being applied

	// mu guards pending, floorAt, markAt and running; a leaf.
	mu      sync.Mutex
	pending store.Batch
	// floorAt is where pending holds each queue's SetFloor: a later one
	// updates it in place, so a batch moves a queue's floor once.
	floorAt map[store.QueueID]int
	markAt  map[store.QueueID]int // the same for each queue's delivered mark
	running bool                  // the flusher runs: queue changes for it
}

func newWriteBehind(st store.Store, log *slog.Logger) *writeBehind {
	return &writeBehind{Store: st, log: log, fence: storeFence{log: log}, wake: make(chan struct{}, 1), stop: make(chan struct{}),
		floorAt: make(map[store.QueueID]int), markAt: make(map[store.QueueID]int)}
}

// start runs the flusher; until then (and after close) queued changes are
// applied at once.
func (w *writeBehind) start() {
	w.mu.Lock()
	w.running = true
	w.mu.Unlock()
	w.wg.Add(1)
	go w.run()
}

// close stops the flusher after a last flush.
func (w *writeBehind) close() {
	w.mu.Lock()
	was := w.running
	w.running = false
	w.mu.Unlock()
	if was {
		close(w.stop)
		w.wg.Wait()
	}
	w.flush()
}

func (w *writeBehind) run() {
	defer w.wg.Done()
	for {
		select {
		case <-w.stop:
			return
		case <-w.wake:
			w.flush()
		}
	}
}

// queue hands b's changes to the flusher and empties b. They are applied
// unsynced, after every change queued before them.
func (w *writeBehind) queue(b *store.Batch) {
	if b.Len() == 0 {
		return
	}
	w.mu.Lock()
	w.appendLocked(b)
	running := w.running
	w.mu.Unlock()
	b.Reset()
	if !running {
		w.flush()
		return
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// appendLocked adds b's ops to pending, folding a queue's SetFloor into
// the one pending already holds. That moves the higher floor to the
// earlier op's place in the batch, which is applied atomically; the point
// writes after that place below the new floor all belong to messages that
// had left when it was set, whose deletes follow them, so the batch ends
// in the same state (a store's range delete of the acked prefix included).
//
// A queue's delivered mark (records.go) folds the same way: it only grows,
// so the batch ends with the latest one wherever it stands.
func (w *writeBehind) appendLocked(b *store.Batch) {
	for _, op := range b.Ops {
		switch {
		case op.Kind == store.OpSetFloor:
			if i, ok := w.floorAt[op.Queue]; ok {
				w.pending.Ops[i].Seq = max(w.pending.Ops[i].Seq, op.Seq)
				continue
			}
			w.floorAt[op.Queue] = len(w.pending.Ops)
		case op.Kind == store.OpPutState && op.Seq == markSeq:
			if i, ok := w.markAt[op.Queue]; ok {
				w.pending.Ops[i].Value = op.Value // queued in order: the later mark is the higher
				continue
			}
			w.markAt[op.Queue] = len(w.pending.Ops)
		}
		w.pending.Ops = append(w.pending.Ops, op)
	}
}

// flush applies the queued changes.
func (w *writeBehind) flush() {
	w.applyMu.Lock()
	defer w.applyMu.Unlock()
	w.takePendingLocked(&w.flushing)
	if w.flushing.Len() == 0 || w.fence.check() != nil {
		// Fenced: the changes (acks, floors) stay in memory only; a
		// restart redelivers what they settled.
		w.flushing.Reset()
		return
	}
	if err := w.Store.Apply(&w.flushing, false); err != nil {
		w.fence.failed("apply queue changes", err)
	}
	w.flushing.Reset()
}

// takePendingLocked appends the queued changes to dst and forgets them.
// applyMu must be held, so that they are applied before any later apply.
func (w *writeBehind) takePendingLocked(dst *store.Batch) {
	w.mu.Lock()
	dst.Append(&w.pending)
	w.pending.Reset()
	clear(w.floorAt)
	clear(w.markAt)
	w.mu.Unlock()
}

// withPendingLocked returns the batch to apply for b: b itself when
// nothing is queued, else the queued changes followed by b's.
func (w *writeBehind) withPendingLocked(b *store.Batch) *store.Batch {
	w.merged.Reset()
	w.takePendingLocked(&w.merged)
	if w.merged.Len() == 0 {
		return b
	}
	w.merged.Append(b)
	return &w.merged
}

// Apply applies the queued changes and b as one batch. A malformed b
// fails alone and leaves the queued changes queued.
func (w *writeBehind) Apply(b *store.Batch, sync bool) error {
	if err := b.Validate(); err != nil {
		return err
	}
	if err := w.fence.check(); err != nil {
		return err
	}
	w.applyMu.Lock()
	defer w.applyMu.Unlock()
	all := w.withPendingLocked(b)
	err := w.Store.Apply(all, sync)
	w.merged.Reset()
	if err != nil {
		return w.fence.failed("apply", err)
	}
	return nil
}

// ApplyAsync applies the queued changes and b as one batch, synced.
func (w *writeBehind) ApplyAsync(b *store.Batch) (func() error, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	if err := w.fence.check(); err != nil {
		return nil, err
	}
	w.applyMu.Lock()
	defer w.applyMu.Unlock()
	all := w.withPendingLocked(b)
	wait, err := w.Store.ApplyAsync(all)
	w.merged.Reset()
	if err != nil {
		return nil, w.fence.failed("apply", err)
	}
	return func() error {
		if err := wait(); err != nil {
			return w.fence.failed("sync", err)
		}
		return nil
	}, nil
}

// The reads below see every change queued before them.

func (w *writeBehind) Scan(q store.QueueID, from uint64, fn func(uint64, []byte) bool) error {
	w.flush()
	return w.Store.Scan(q, from, fn)
}

func (w *writeBehind) ScanIndex(q store.QueueID, from uint64, fn func(uint64, []byte) bool) error {
	w.flush()
	return w.Store.ScanIndex(q, from, fn)
}

func (w *writeBehind) ScanState(q store.QueueID, fn func(uint64, []byte) bool) error {
	w.flush()
	return w.Store.ScanState(q, fn)
}

func (w *writeBehind) ScanDelays(from int64, fn func(int64, store.QueueID, uint64) bool) error {
	w.flush()
	return w.Store.ScanDelays(from, fn)
}

func (w *writeBehind) LastSeq(q store.QueueID) (uint64, error) {
	w.flush()
	return w.Store.LastSeq(q)
}

func (w *writeBehind) Floor(q store.QueueID) (uint64, error) {
	w.flush()
	return w.Store.Floor(q)
}

func (w *writeBehind) GetMeta(key string) ([]byte, error) {
	w.flush()
	return w.Store.GetMeta(key)
}

func (w *writeBehind) ScanMeta(prefix string, fn func(string, []byte) bool) error {
	w.flush()
	return w.Store.ScanMeta(prefix, fn)
}
