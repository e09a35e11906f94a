// Package store is Sluice's durable state behind one small interface.
//
// The store speaks its own vocabulary: queue ids, sequence numbers, opaque
// records and metadata keys. It never sees broker types; the broker encodes
// its messages and definitions into records and decodes them again.
//
// Keyspaces (each implementation keeps them apart):
//
//	message  (queue, seq) -> record      written once, deleted once (ack)
//	index    (queue, seq) -> bytes       optional small summary of a message, written and
//	                                     deleted with it (what a restart needs, without the body)
//	state    (queue, seq) -> bytes       mutable per-message state (delivery count, …)
//	delay    (due, queue, seq) -> empty  the delay index, scanned in due order
//	floor    queue -> seq                every message below it is acked
//	meta     key -> value                definitions: exchanges, queues, bindings, users, …
//	body     id -> bytes, refs           optional (Bodies, bodies.go): one copy of a fanned-out
//	                                     message's bytes, deleted by a sweep once no ref is live
//
// Every change goes through a Batch applied atomically by Apply; a batch
// applied with sync=true is durable (fsynced) when Apply returns. A Store
// does not wait for company: grouping many writers' batches into one
// synced Apply, ordering them and completing each writer in order is the
// write pipeline's job (Pipeline, pipeline.go), the one way the broker
// writes.
//
// Implementations are safe for concurrent use.
package store

import (
	"errors"
	"fmt"
)

// QueueID names one queue's message log. The broker assigns ids and keeps
// the name-to-id mapping in metadata.
type QueueID uint64

// ErrNotFound is returned when a message or metadata key does not exist.
var ErrNotFound = errors.New("store: not found")

// ErrCorrupt marks data that failed a checksum or could not be decoded. The
// error it wraps names the file and the position.
var ErrCorrupt = errors.New("store: corrupt data")

// ErrClosed is returned by every method after Close.
var ErrClosed = errors.New("store: closed")

// ErrFenced is returned by writes after an engine failure (a full or
// failing disk, the data directory deleted) fenced the store: nothing is
// written until a restart. Reads go on. The error wraps the failure.
var ErrFenced = errors.New("store: fenced after an engine failure")

// ErrNotCommitted is returned by a cluster's store for a write that must
// be replicated and was not confirmed committed in time (no leader, no
// majority, or this node lost the lead of a quorum queue's group with the
// write in flight). The local store is intact: it is not a storage failure, and
// the write may still be committed later.
var ErrNotCommitted = errors.New("store: replicated write not confirmed committed")

// ErrInvalidBatch is returned by Apply for a malformed batch (unknown op
// kind, a range whose end is below its start); nothing was applied.
var ErrInvalidBatch = errors.New("store: invalid batch")

// Store is the durable engine.
type Store interface {
	// Apply commits b atomically. With sync it returns once the batch is on
	// stable storage. A failed Apply changed nothing.
	Apply(b *Batch, sync bool) error
	// ApplyAsync commits b atomically and returns once it is visible to
	// reads, before it is durable; wait blocks until it is (or returns the
	// error that kept it from being). Batches become durable in the order
	// they were applied, so a caller can apply its next batch while the
	// previous one is being synced. The caller must call wait exactly once.
	ApplyAsync(b *Batch) (wait func() error, err error)

	// Scan calls fn for the queue's messages with seq >= from, in ascending
	// seq order, until fn returns false. The record slice is valid only
	// during the call. Callers start from the queue's floor, never from 0.
	Scan(q QueueID, from uint64, fn func(seq uint64, rec []byte) bool) error
	// Get returns one message record (a copy), or ErrNotFound.
	Get(q QueueID, seq uint64) ([]byte, error)
	// LastSeq returns the highest seq ever stored in the queue that is still
	// present, or 0 when the queue holds no messages.
	LastSeq(q QueueID) (uint64, error)
	// Floor returns the queue's ack floor (0 when never set).
	Floor(q QueueID) (uint64, error)

	// ScanIndex calls fn for the index entries of the queue's messages with
	// seq >= from (those put with PutIndexed), in ascending seq order, until
	// fn returns false. It reads no message record, so a restart can rebuild
	// a large backlog's in-memory index quickly. The slice is valid only
	// during the call. Callers start from the queue's floor.
	ScanIndex(q QueueID, from uint64, fn func(seq uint64, idx []byte) bool) error

	// ScanState calls fn for every per-message state entry of the queue in
	// ascending seq order. Entries below the queue's floor (acked) may be
	// skipped: an engine seeks from the floor.
	ScanState(q QueueID, fn func(seq uint64, state []byte) bool) error

	// ScanDelays calls fn for delay-index entries in ascending due order
	// (ties by queue, then seq), starting at the first with due >= from.
	ScanDelays(from int64, fn func(due int64, q QueueID, seq uint64) bool) error

	// GetMeta returns a metadata value (a copy), or ErrNotFound.
	GetMeta(key string) ([]byte, error)
	// ScanMeta calls fn for every metadata key with the prefix, in key order.
	ScanMeta(prefix string, fn func(key string, value []byte) bool) error

	// Close flushes and releases the store. Further calls return ErrClosed.
	Close() error
}

// OpKind says what one batch operation does.
type OpKind uint8

const (
	OpPutMessage    OpKind = iota + 1 // Queue, Seq, Value, and Index when not nil
	OpDeleteMessage                   // Queue, Seq (the key was written once): the message and its index entry
	OpDeleteRange                     // Queue, Seq up to (not including) End: messages, index entries and states
	OpPutState                        // Queue, Seq, Value
	OpDeleteState                     // Queue, Seq
	OpPutDelay                        // Due, Queue, Seq
	OpDeleteDelay                     // Due, Queue, Seq
	OpSetFloor                        // Queue, Seq: all messages below Seq are gone
	OpDropQueue                       // Queue: messages, index entries, states, floor; the caller deletes its delay entries
	OpPutMeta                         // Key, Value
	OpDeleteMeta                      // Key
	OpPutBody                         // Seq (the body id), Value, Refs (bodies.go)
)

// Op is one operation of a batch.
type Op struct {
	Kind  OpKind
	Queue QueueID
	Seq   uint64
	End   uint64
	Due   int64 // unix milliseconds
	Key   string
	Value []byte
	// Index is the index entry of an OpPutMessage (nil: none).
	Index []byte
	// Refs are the messages that share the body of an OpPutBody.
	Refs []BodyRef
}

// Batch is an ordered list of operations applied atomically. The zero value
// is an empty batch. A Batch is not safe for concurrent use.
type Batch struct {
	Ops []Op
}

// Len returns the number of operations in the batch.
func (b *Batch) Len() int { return len(b.Ops) }

// Reset empties the batch, keeping its capacity.
func (b *Batch) Reset() { clear(b.Ops); b.Ops = b.Ops[:0] }

// Append adds all of other's operations to b.
func (b *Batch) Append(other *Batch) { b.Ops = append(b.Ops, other.Ops...) }

// Bytes returns the bytes b's operations carry: values, index entries and
// metadata keys (what a store copies into its own batch).
func (b *Batch) Bytes() int64 {
	var n int64
	for i := range b.Ops {
		op := &b.Ops[i]
		n += int64(len(op.Value) + len(op.Index) + len(op.Key) + bodyRefLen*len(op.Refs))
	}
	return n
}

func (b *Batch) PutMessage(q QueueID, seq uint64, rec []byte) {
	b.Ops = append(b.Ops, Op{Kind: OpPutMessage, Queue: q, Seq: seq, Value: rec})
}

// PutIndexed puts a message record and its index entry (see ScanIndex);
// both are written once and deleted together by DeleteMessage, DeleteRange,
// the range delete of a SetFloor and DropQueue.
func (b *Batch) PutIndexed(q QueueID, seq uint64, rec, idx []byte) {
	b.Ops = append(b.Ops, Op{Kind: OpPutMessage, Queue: q, Seq: seq, Value: rec, Index: idx})
}

// DeleteMessage removes a message and its index entry.
func (b *Batch) DeleteMessage(q QueueID, seq uint64) {
	b.Ops = append(b.Ops, Op{Kind: OpDeleteMessage, Queue: q, Seq: seq})
}

// DeleteRange removes the queue's messages, index entries and states with
// from <= seq < end.
func (b *Batch) DeleteRange(q QueueID, from, end uint64) {
	b.Ops = append(b.Ops, Op{Kind: OpDeleteRange, Queue: q, Seq: from, End: end})
}

func (b *Batch) PutState(q QueueID, seq uint64, state []byte) {
	b.Ops = append(b.Ops, Op{Kind: OpPutState, Queue: q, Seq: seq, Value: state})
}

func (b *Batch) DeleteState(q QueueID, seq uint64) {
	b.Ops = append(b.Ops, Op{Kind: OpDeleteState, Queue: q, Seq: seq})
}

func (b *Batch) PutDelay(due int64, q QueueID, seq uint64) {
	b.Ops = append(b.Ops, Op{Kind: OpPutDelay, Due: due, Queue: q, Seq: seq})
}

func (b *Batch) DeleteDelay(due int64, q QueueID, seq uint64) {
	b.Ops = append(b.Ops, Op{Kind: OpDeleteDelay, Due: due, Queue: q, Seq: seq})
}

// SetFloor records that every message of q below seq is acked. An engine
// may use it to drop the acked prefix wholesale.
func (b *Batch) SetFloor(q QueueID, seq uint64) {
	b.Ops = append(b.Ops, Op{Kind: OpSetFloor, Queue: q, Seq: seq})
}

func (b *Batch) DropQueue(q QueueID) {
	b.Ops = append(b.Ops, Op{Kind: OpDropQueue, Queue: q})
}

func (b *Batch) PutMeta(key string, value []byte) {
	b.Ops = append(b.Ops, Op{Kind: OpPutMeta, Key: key, Value: value})
}

func (b *Batch) DeleteMeta(key string) {
	b.Ops = append(b.Ops, Op{Kind: OpDeleteMeta, Key: key})
}

// Validate checks that every operation of b is well formed: a known kind
// and, for a range, End >= Seq. Engines call it before touching anything so
// that a malformed batch fails whole and changes nothing. (Added for the
// engines: both reject the same batches the same way.)
func (b *Batch) Validate() error {
	for i, op := range b.Ops {
		switch op.Kind {
		case OpPutMessage, OpDeleteMessage, OpPutState, OpDeleteState,
			OpPutDelay, OpDeleteDelay, OpSetFloor, OpDropQueue, OpPutMeta, OpDeleteMeta:
		case OpPutBody:
			if len(op.Refs) == 0 {
				return fmt.Errorf("%w: op %d: body %d without a reference", ErrInvalidBatch, i, op.Seq)
			}
		case OpDeleteRange:
			if op.End < op.Seq {
				return fmt.Errorf("%w: op %d: range end %d below start %d", ErrInvalidBatch, i, op.End, op.Seq)
			}
		default:
			return fmt.Errorf("%w: op %d: unknown kind %d", ErrInvalidBatch, i, op.Kind)
		}
	}
	return nil
}
