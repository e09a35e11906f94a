package store

// Shared bodies: one copy of a message's bytes that several queues' records
// refer to, for a publish routed to two or more durable queues (a fanout),
// which would otherwise write and compact the same bytes once per queue.
//
// A body is written once, in the same batch as every record that refers to
// it, and lists those records (its refs) in that batch; its list never
// changes afterwards. A record that refers to a body is deleted like any
// other (an ack, a range delete of an acked prefix, a purge, a queue
// drop), without touching the body: nothing counts references down, so a
// range delete needs no per-message work. Instead SweepBodies deletes a body
// once none of its refs is live any more. Since refs are only ever removed,
// a body found unreferenced stays unreferenced, and deleting it is safe
// whenever it happens, in any batch, after any crash.
//
// What the caller keeps to (the broker):
//   - every record that names a body is among that body's refs, put in the
//     body's own batch: a record that moves to another queue (dead letter,
//     move, redrive) or is edited is written there whole, with a copy of
//     the body, never as a new reference;
//   - body ids are never reused while a record may still name the id (ids
//     above LastBodyID are always safe).
//
// A ref is live while its message exists at or above its queue's floor;
// a seq reused in a queue after its message was deleted only keeps the body
// longer, never loses it.

// BodyRef names one message that refers to a shared body.
type BodyRef struct {
	Queue QueueID
	Seq   uint64
}

// bodyRefLen is the bytes a ref takes in a batch and on disk.
const bodyRefLen = 16

// Bodies is what an engine that keeps shared bodies offers beyond Store.
// Both engines of this package implement it; a caller type-asserts and
// writes whole records where a store does not.
type Bodies interface {
	// GetBody returns a copy of a shared body, or ErrNotFound.
	GetBody(id uint64) ([]byte, error)
	// BodyRefs returns the refs a body was put with, or ErrNotFound.
	BodyRefs(id uint64) ([]BodyRef, error)
	// LastBodyID returns the highest id of a body present, or 0.
	LastBodyID() (uint64, error)
	// SweepBodies deletes the bodies with id >= from none of whose refs is
	// live, looking at no more than max bodies (max <= 0: all of them). It
	// returns the id to resume from (0 when it reached the last body) and
	// how many it deleted. A sweep's deletes need no sync: one lost in a
	// crash is found again by the next sweep.
	SweepBodies(from uint64, max int) (next uint64, deleted int, err error)
}

// PutBody puts a shared body under id with the messages that refer to it;
// the records themselves are the caller's PutMessage ops of the same batch.
func (b *Batch) PutBody(id uint64, body []byte, refs []BodyRef) {
	b.Ops = append(b.Ops, Op{Kind: OpPutBody, Seq: id, Value: body, Refs: refs})
}
