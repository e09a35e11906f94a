package store

// The write pipeline: the one way writes reach a Store. Its model is
// Pebble's commitPipeline: the pipeline owns ordering, grouping and the
// wait for fsync, and takes what it does not know (how an intent becomes
// operations, what completing one means) as functions.

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
)

// Pipeline is the write path a Store sits behind. Its caller hands it
// intents (Submit), unsynced changes (Defer) and batches to apply now
// (Apply); it turns them into few store applies and completes every intent
// in the order it was submitted. A replicated pipeline puts a consensus
// log in front of the same contract.
//
// Guarantees, for every write made through one Pipeline:
//
//   - Order: writes reach the store in the order they were made: a Defer
//     before any Submit or Apply made after it, intents in submit order.
//   - Durability: a synced write carries every change deferred before it,
//     so it is durable with it. Deferred changes not yet followed by a
//     synced write may be lost in a crash.
//   - Completion: every submitted intent is completed exactly once, in
//     submit order, after its batch is durable (when Prepare asked for a
//     sync) or applied; with the error that kept it from being.
//   - Visibility: Flush applies the deferred changes, so a read after it
//     sees them; the Store view flushes before its reads.
//
// Failures: a failed apply fails the intents and the caller of the batch
// it carried, and leaves the deferred changes it carried deferred, so they
// ride the next write (whose caller then hears of a store that stays
// broken); they are never dropped.
type Pipeline[T any] interface {
	// Submit hands the pipeline an intent; it blocks while the pipeline is
	// behind (backpressure). It fails with ErrClosed after Close.
	Submit(it T) error
	// Defer queues b's changes, to be applied unsynced after everything
	// queued before them, and empties b. Several SetFloor ops of one queue
	// deferred together are folded into one.
	Defer(b *Batch)
	// Apply applies the deferred changes and b as one batch and returns
	// once it is applied, with sync once it is durable. A malformed b
	// fails alone and leaves the deferred changes queued.
	Apply(b *Batch, sync bool) error
	// Flush applies the deferred changes.
	Flush() error
	// Sync returns once every write made or deferred before it is
	// durable. A caller defers its changes under its own locks and syncs
	// after releasing them, so no lock is held across an fsync.
	Sync() error
	// Close stops accepting intents, completes those submitted and applies
	// what is deferred. Changes deferred after Close are applied at once.
	Close(ctx context.Context) error
}

// PipelineEnv is what a LocalPipeline needs from its caller.
type PipelineEnv[T any] struct {
	Store Store
	// Prepare adds the operations of a group of intents, in order, to b
	// and reports whether b must be synced. It runs on the pipeline's
	// goroutine, one group at a time, in submit order, so it may assign
	// sequence numbers; no lock of the pipeline is held, so it may take
	// the caller's (who must then not Submit under them: Submit blocks
	// while the pipeline is behind).
	Prepare func(group []T, b *Batch) (sync bool)
	// Complete finishes a group once its batch is durable or applied (err
	// nil) or failed. It runs on the pipeline's completion goroutine, one
	// group at a time, in submit order, and must not wait for a write made
	// through the pipeline.
	Complete func(group []T, err error)
	// Permanent, when set, tells an error after which the store takes no
	// more writes: the deferred changes a failed apply carried are then
	// dropped instead of kept for the next write.
	Permanent func(error) bool
	// Logger receives the line that says deferred changes failed to apply
	// (once, until a flush succeeds again).
	Logger *slog.Logger
	// QueueLen bounds intents waiting for the pipeline, MaxGroup the intents
	// applied as one batch and Depth the applied groups waiting for their
	// sync; zero picks a default.
	QueueLen, MaxGroup, Depth int
	// Size, when set, tells the bytes an intent's operations carry (the
	// same answer every time it is asked). MaxBytes then bounds the bytes
	// of the intents submitted and not yet completed, and MaxGroupBytes
	// those applied as one batch; zero picks a default. An intent larger
	// than either bound waits until nothing else is in flight and then
	// goes alone. The counts above bound small intents, these large ones:
	// 4,096 messages of 64 KiB each are 256 MiB of memory.
	Size                    func(T) int64
	MaxBytes, MaxGroupBytes int64
}

// Default byte bounds of a pipeline: MaxBytes keeps a disk's worth of
// writes in flight (an fsync of a few milliseconds at a few hundred MB/s is
// a few MB), MaxGroupBytes keeps a batch below the size at which Pebble
// (with the broker's 8 MiB memtable) stops copying it into the memtable
// and queues it whole for a flush of its own.
const (
	DefaultMaxBytes      = 32 << 20
	DefaultMaxGroupBytes = 2 << 20
)

// LocalPipeline is the Pipeline over a local Store: one goroutine groups
// intents and applies them (and deferred changes when idle), a second
// waits for each group's sync and completes it. Synced groups are applied
// with ApplyAsync, so the next group is gathered while the store syncs
// this one, and the store folds the syncs that queue up.
//
// One mutex (mu) orders every apply: the pipeline's goroutine and callers
// of Apply take it to merge the deferred changes into their batch and
// hand it to the store, and release it before they wait for a sync.
type LocalPipeline[T any] struct {
	env     PipelineEnv[T]
	intents chan sized[T]
	applied chan appliedGroup[T]
	wake    chan struct{} // capacity 1: deferred changes wait
	wg      sync.WaitGroup

	// closeMu guards closed: submitters hold it for reading while they
	// send, so Close can tell when no one will send again.
	closeMu sync.RWMutex
	closed  bool

	prepared Batch // scratch of the pipeline's goroutine: a group's ops

	// mu is held across every store apply, and nothing else; it guards
	// batch and merged.
	mu     sync.Mutex
	batch  Batch // scratch of the pipeline's goroutine
	merged Batch // scratch: deferred changes followed by a caller's batch

	// pendingMu guards pending, floorAt and running; a leaf.
	pendingMu sync.Mutex
	pending   Batch
	// floorAt is where pending holds each queue's SetFloor: a later one
	// updates it in place, so a batch moves a queue's floor once.
	floorAt map[QueueID]int
	running bool // the goroutines run: deferred changes wait for them
	// puts counts the message puts pending holds (rare: an operator's
	// edit); while there are any, Get flushes first.
	puts atomic.Int64

	flushFailing atomic.Bool // the last flush failed (its line was logged)

	// bytesMu guards inflight, the bytes of intents submitted and not yet
	// completed; bytesFreed is signalled when completions lower it. A leaf.
	bytesMu    sync.Mutex
	bytesFreed sync.Cond
	inflight   int64

	// Syncs and Applies count store applies, Throttled the submits that
	// waited for bytes in flight to complete (for tests and metrics).
	Syncs, Applies, Throttled atomic.Uint64
}

// sized is an intent with the bytes it reserved.
type sized[T any] struct {
	it T
	n  int64
}

var _ Pipeline[int] = (*LocalPipeline[int])(nil)

// appliedGroup is a group handed to the store, on its way to completion.
type appliedGroup[T any] struct {
	group []T
	bytes int64        // what the group's intents reserved
	wait  func() error // waits for the group's sync; nil when unsynced
	err   error        // the apply failed
}

// NewPipeline returns a pipeline over env.Store. Until Start, deferred
// changes are applied at once and nothing may be submitted.
func NewPipeline[T any](env PipelineEnv[T]) *LocalPipeline[T] {
	if env.Logger == nil {
		env.Logger = slog.New(slog.DiscardHandler)
	}
	env.QueueLen = cmpOr(env.QueueLen, 4096)
	env.MaxGroup = cmpOr(env.MaxGroup, 1024)
	env.Depth = cmpOr(env.Depth, 8)
	env.MaxBytes = cmpOr(env.MaxBytes, DefaultMaxBytes)
	env.MaxGroupBytes = cmpOr(env.MaxGroupBytes, DefaultMaxGroupBytes)
	p := &LocalPipeline[T]{env: env, intents: make(chan sized[T], env.QueueLen),
		applied: make(chan appliedGroup[T], env.Depth), wake: make(chan struct{}, 1),
		floorAt: make(map[QueueID]int)}
	p.bytesFreed.L = &p.bytesMu
	return p
}

func cmpOr[N int | int64](v, def N) N {
	if v > 0 {
		return v
	}
	return def
}

// Start runs the pipeline's two goroutines; Close stops them.
func (p *LocalPipeline[T]) Start() {
	p.pendingMu.Lock()
	p.running = true
	p.pendingMu.Unlock()
	p.wg.Add(2)
	go p.run()
	go p.complete()
}

// Submit implements Pipeline.
func (p *LocalPipeline[T]) Submit(it T) error {
	p.closeMu.RLock()
	defer p.closeMu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	var n int64
	if p.env.Size != nil {
		n = p.env.Size(it)
		p.reserve(n)
	}
	p.intents <- sized[T]{it, n}
	return nil
}

// reserve waits until n more bytes fit the bytes in flight (or nothing is
// in flight) and counts them. Close waits for submitters, and completions,
// which free bytes, go on until the last intent is completed.
func (p *LocalPipeline[T]) reserve(n int64) {
	p.bytesMu.Lock()
	defer p.bytesMu.Unlock()
	if p.inflight > 0 && p.inflight+n > p.env.MaxBytes {
		p.Throttled.Add(1)
		for p.inflight > 0 && p.inflight+n > p.env.MaxBytes {
			p.bytesFreed.Wait()
		}
	}
	p.inflight += n
}

// release gives back the bytes of completed intents.
func (p *LocalPipeline[T]) release(n int64) {
	if n == 0 {
		return
	}
	p.bytesMu.Lock()
	p.inflight -= n
	p.bytesMu.Unlock()
	p.bytesFreed.Broadcast()
}

// InflightBytes returns the bytes of the intents submitted and not yet
// completed (zero without PipelineEnv.Size).
func (p *LocalPipeline[T]) InflightBytes() int64 {
	p.bytesMu.Lock()
	defer p.bytesMu.Unlock()
	return p.inflight
}

// Close implements Pipeline.
func (p *LocalPipeline[T]) Close(ctx context.Context) error {
	p.closeMu.Lock()
	was := !p.closed
	if was {
		p.closed = true
		close(p.intents)
	}
	p.closeMu.Unlock()
	stopped := make(chan struct{})
	go func() { p.wg.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		return ctx.Err()
	}
	p.pendingMu.Lock()
	p.running = false
	p.pendingMu.Unlock()
	return p.Flush()
}

// run gathers groups of intents and applies them; between groups it
// applies the deferred changes. A group ends at MaxGroup intents or before
// the intent that would take it past MaxGroupBytes, which starts the next.
func (p *LocalPipeline[T]) run() {
	defer p.wg.Done()
	defer close(p.applied)
	var (
		next    sized[T]
		carried bool // next was taken from intents and starts the next group
	)
	for {
		if !carried {
			select {
			case it, ok := <-p.intents:
				if !ok {
					return
				}
				next = it
			case <-p.wake:
				if len(p.intents) == 0 { // else the next group carries them
					_ = p.Flush()
				}
				continue
			}
		}
		carried = false
		group := append(make([]T, 0, 16), next.it) // the completer owns it
		bytes := next.n
	drain:
		for len(group) < p.env.MaxGroup {
			select {
			case it, ok := <-p.intents:
				if !ok {
					break drain
				}
				if bytes+it.n > p.env.MaxGroupBytes {
					next, carried = it, true
					break drain
				}
				group = append(group, it.it)
				bytes += it.n
			default:
				break drain
			}
		}
		p.applied <- p.applyGroup(group, bytes)
	}
}

// applyGroup applies one group's batch (after the deferred changes),
// synced or not, without waiting for its sync.
func (p *LocalPipeline[T]) applyGroup(group []T, bytes int64) appliedGroup[T] {
	ops := &p.prepared
	ops.Reset()
	defer ops.Reset()
	// Prepare runs before mu is taken: it may take its caller's locks,
	// and a caller may flush (take mu) under them.
	sync := p.env.Prepare(group, ops)
	p.mu.Lock()
	defer p.mu.Unlock()
	b := &p.batch
	b.Reset()
	defer b.Reset()
	deferred := p.takePending(b)
	if deferred == 0 {
		b = ops
	} else {
		b.Append(ops)
	}
	g := appliedGroup[T]{group: group, bytes: bytes}
	if sync {
		g.wait, g.err = p.env.Store.ApplyAsync(b)
		p.Syncs.Add(1)
	} else {
		g.err = p.env.Store.Apply(b, false)
	}
	p.Applies.Add(1)
	if g.err != nil {
		p.keepFailed(g.err, b.Ops[:deferred])
	}
	return g
}

// complete finishes the applied groups in order.
func (p *LocalPipeline[T]) complete() {
	defer p.wg.Done()
	for g := range p.applied {
		err := g.err
		if err == nil && g.wait != nil {
			err = g.wait()
		}
		// Released first: whoever learns of the completion sees the bytes
		// out of flight (one group's worth, MaxGroupBytes, may overlap).
		p.release(g.bytes)
		p.env.Complete(g.group, err)
	}
}

// Defer implements Pipeline.
func (p *LocalPipeline[T]) Defer(b *Batch) {
	if b.Len() == 0 {
		return
	}
	if err := b.Validate(); err != nil {
		// A caller's bug. Deferred changes are checked here as well as by
		// the engine, because a bad one, kept for the next write after
		// each failure, would fail every later write.
		p.env.Logger.Error("defer changes: dropping a malformed batch", "err", err)
		b.Reset()
		return
	}
	p.pendingMu.Lock()
	p.appendPendingLocked(b)
	running := p.running
	p.pendingMu.Unlock()
	b.Reset()
	if !running {
		_ = p.Flush()
		return
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// appendPendingLocked adds b's ops to pending, folding a queue's SetFloor
// into the one pending already holds. That moves the higher floor to the
// earlier op's place in the batch, which is applied atomically; the point
// writes after that place below the new floor all belong to messages that
// had left when it was set, whose deletes follow them, so the batch ends
// in the same state (a store's range delete of the acked prefix included).
func (p *LocalPipeline[T]) appendPendingLocked(b *Batch) {
	for _, op := range b.Ops {
		if op.Kind == OpPutMessage {
			p.puts.Add(1)
		}
		if op.Kind == OpSetFloor {
			if i, ok := p.floorAt[op.Queue]; ok {
				p.pending.Ops[i].Seq = max(p.pending.Ops[i].Seq, op.Seq)
				continue
			}
			p.floorAt[op.Queue] = len(p.pending.Ops)
		}
		p.pending.Ops = append(p.pending.Ops, op)
	}
}

// takePending appends the deferred changes to dst, forgets them and
// returns how many ops they were. mu must be held, so that they are
// applied before any later apply.
func (p *LocalPipeline[T]) takePending(dst *Batch) int {
	p.pendingMu.Lock()
	defer p.pendingMu.Unlock()
	n := p.pending.Len()
	dst.Append(&p.pending)
	p.pending.Reset()
	clear(p.floorAt)
	p.puts.Store(0)
	return n
}

// keepFailed keeps the deferred changes a failed apply carried for the
// next write, unless err is permanent. mu must be held.
func (p *LocalPipeline[T]) keepFailed(err error, ops []Op) {
	if p.env.Permanent != nil && p.env.Permanent(err) {
		return
	}
	p.restorePending(ops)
}

// restorePending puts back deferred changes whose apply failed, before
// those deferred since. mu must be held.
func (p *LocalPipeline[T]) restorePending(ops []Op) {
	if len(ops) == 0 {
		return
	}
	ops = slices.Clone(ops)
	p.pendingMu.Lock()
	defer p.pendingMu.Unlock()
	later := p.pending.Ops
	p.pending.Ops = nil
	clear(p.floorAt)
	p.puts.Store(0)
	p.appendPendingLocked(&Batch{Ops: ops})
	p.appendPendingLocked(&Batch{Ops: later})
}

// Flush implements Pipeline. Deferred changes that fail to apply stay
// deferred (unless the error is permanent).
func (p *LocalPipeline[T]) Flush() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := &p.merged
	b.Reset()
	defer b.Reset()
	if p.takePending(b) == 0 {
		return nil
	}
	p.Applies.Add(1)
	if err := p.env.Store.Apply(b, false); err != nil {
		if !p.flushFailing.Swap(true) {
			p.env.Logger.Error("apply deferred changes", "changes", b.Len(), "err", err)
		}
		p.keepFailed(err, b.Ops)
		return err
	}
	p.flushFailing.Store(false)
	return nil
}

// syncKey is a metadata key the store reserves and never writes: Sync
// deletes it, because an empty batch would not reach the log to be synced.
const syncKey = "\x00store/sync"

// Sync implements Pipeline: a synced apply of the deferred changes, or of
// a no-op when there are none, syncs everything applied before it too.
func (p *LocalPipeline[T]) Sync() error {
	var b Batch
	b.DeleteMeta(syncKey)
	return p.Apply(&b, true)
}

// Apply implements Pipeline. The engine validates the batch (once, for
// the deferred changes and b together); a malformed b fails the apply
// whole, and the deferred changes go back to wait for the next write.
func (p *LocalPipeline[T]) Apply(b *Batch, sync bool) error {
	wait, err := p.apply(b, sync)
	if err != nil || wait == nil {
		return err
	}
	return wait()
}

// apply hands the deferred changes and b to the store under mu; for a
// synced apply it returns the wait for the sync, to be called without mu.
func (p *LocalPipeline[T]) apply(b *Batch, sync bool) (wait func() error, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	all := &p.merged
	all.Reset()
	defer p.merged.Reset()
	deferred := p.takePending(all)
	if deferred == 0 {
		all = b
	} else {
		all.Append(b)
	}
	p.Applies.Add(1)
	if sync {
		p.Syncs.Add(1)
		wait, err = p.env.Store.ApplyAsync(all)
	} else {
		err = p.env.Store.Apply(all, false)
	}
	if err != nil {
		p.keepFailed(err, all.Ops[:deferred])
	}
	return wait, err
}

// Store returns a Store whose writes go through p (ApplyAsync as a synced
// Apply) and whose reads first flush the deferred changes (Get only when
// they put a message). Closing it closes nothing.
func (p *LocalPipeline[T]) Store() Store { return pipelineStore[T]{p} }

type pipelineStore[T any] struct{ p *LocalPipeline[T] }

func (s pipelineStore[T]) Apply(b *Batch, sync bool) error { return s.p.Apply(b, sync) }

func (s pipelineStore[T]) ApplyAsync(b *Batch) (func() error, error) {
	return s.p.apply(b, true)
}

func (s pipelineStore[T]) st() Store { _ = s.p.Flush(); return s.p.env.Store }

func (s pipelineStore[T]) Scan(q QueueID, from uint64, fn func(uint64, []byte) bool) error {
	return s.st().Scan(q, from, fn)
}

func (s pipelineStore[T]) Get(q QueueID, seq uint64) ([]byte, error) {
	if s.p.puts.Load() > 0 {
		_ = s.p.Flush()
	}
	return s.p.env.Store.Get(q, seq)
}

func (s pipelineStore[T]) LastSeq(q QueueID) (uint64, error) { return s.st().LastSeq(q) }
func (s pipelineStore[T]) Floor(q QueueID) (uint64, error)   { return s.st().Floor(q) }

func (s pipelineStore[T]) ScanIndex(q QueueID, from uint64, fn func(uint64, []byte) bool) error {
	return s.st().ScanIndex(q, from, fn)
}

func (s pipelineStore[T]) ScanState(q QueueID, fn func(uint64, []byte) bool) error {
	return s.st().ScanState(q, fn)
}

func (s pipelineStore[T]) ScanDelays(from int64, fn func(int64, QueueID, uint64) bool) error {
	return s.st().ScanDelays(from, fn)
}

func (s pipelineStore[T]) GetMeta(key string) ([]byte, error) { return s.st().GetMeta(key) }

func (s pipelineStore[T]) ScanMeta(prefix string, fn func(string, []byte) bool) error {
	return s.st().ScanMeta(prefix, fn)
}

func (s pipelineStore[T]) Close() error { return nil }
