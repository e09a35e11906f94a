package broker

// Moves: the one way a message leaves a place for queues. Dead lettering
// (deadletter.go), a delayed publish coming due (delay.go) and an
// operator's move (admin_move.go, package dlq's redrive) all build a
// moveReq and hand it to env.move, which publishes the message to its
// targets through the write pipeline with the delete from its source in
// the same store batch: after a crash the message is in its source or in
// its targets, never both, never neither.
//
// While a move is in flight its source queue keeps the message in one
// table, queue.held: no consumer can take it, browsing does not list it,
// it counts as neither ready nor unacked, and the source's ack floor
// stays below it. queue.release ends the hold once the batch settled.

import (
	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/store"
)

// moveReq is one message on its way from its source to its targets.
type moveReq struct {
	// src holds the message in its held table; nil when the message is
	// in no queue (a delayed publish, a publish a full queue refused).
	src *queue
	e   entry // the message's entry in src.held
	// msg is the message as its targets get it (rewritten by the caller).
	msg     *message.Message
	targets []*queue
	// also holds more operations for the same batch: the delay queue's
	// record and index entry, a redrive task's progress.
	also *store.Batch
	// sync forces a synced batch (it is synced anyway when the message is
	// persistent and a target or the source is durable).
	sync bool
	// keep: a target that refuses the message (reject-publish, full)
	// leaves it whole at its source, as an operator's redrive wants;
	// otherwise it is dropped there, as RabbitMQ drops a dead letter a
	// full queue refuses.
	keep bool
	// done, when set, is called once the move settled and the hold ended.
	done func(error)
}

// hold moves a message held out of every list into q.held.
func (q *queue) holdLocked(e entry) {
	q.held[e.seq] = e
	q.holdSeqLocked(e.seq)
}

// move submits mv; it never blocks on the write pipeline's result.
func (e *env) move(mv *moveReq) {
	if local, remote := splitServed(mv.targets); remote != nil {
		e.moveRemote(mv, local, remote)
		return
	}
	req, err := newPublishReq(mv.msg, mv.targets, nil, e.now())
	if err != nil {
		e.settleMove(mv, err)
		return
	}
	also := mv.also
	if src := mv.src; src != nil {
		if also == nil {
			also = &store.Batch{}
		}
		also.DeleteMessage(src.id, mv.e.seq)
		if mv.e.flags&entryState != 0 {
			also.DeleteState(src.id, mv.e.seq)
		}
		mv.sync = mv.sync || (src.durable && mv.e.flags&entryPersistent != 0)
	}
	req.also = also
	req.sync = req.sync || mv.sync
	req.keep = mv.keep
	req.done = func(err error) { e.settleMove(mv, err) }
	if err := e.submit(req); err != nil {
		e.settleMove(mv, err)
	}
}

// moveRemote is move of mv whose targets include quorum queues led by
// other nodes (a dead letter, a delayed publish released here): their
// leaders get the message first, and once they have it the rest goes as a
// move of its own, with the source's delete. A forward that failed leaves
// the message at its source (a store failure's outcome), one that
// succeeded before the rest failed may be repeated: at least once.
func (e *env) moveRemote(mv *moveReq, local, remote []*queue) {
	if _, err := e.forwardPublish(mv.msg, remote, func(err error) {
		if err != nil {
			e.settleMove(mv, decodeRemoteError(err))
			return
		}
		rest := *mv
		rest.targets = local
		go e.move(&rest) // not on the transport's reader
	}, 0); err != nil {
		e.settleMove(mv, err)
	}
}

// settleMove ends mv's hold: the message left its source (moved, or
// dropped by a refusing target) or, after a store failure or a refusal of
// a keeping move, is ready there again.
func (e *env) settleMove(mv *moveReq, err error) {
	if mv.src != nil {
		mv.src.release(mv.e.seq, err == nil || (!mv.keep && CodeOf(err) != Internal), nil)
	}
	if mv.done != nil {
		mv.done(err)
	}
}

// release ends the hold on seq: gone (deleted here too, which is harmless
// after the move batch deleted it and covers the drop paths) or back to
// the ready list in its place, changed by update first when it is not nil.
func (q *queue) release(seq uint64, gone bool, update func(*entry)) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, ok := q.held[seq]
	if !ok {
		return
	}
	delete(q.held, seq)
	if q.deleted {
		return
	}
	var b store.Batch
	if gone {
		q.removeLocked(&b, e)
	} else {
		if update != nil {
			update(&e)
		}
		q.ready.putBack(e)
		q.dispatchLocked()
	}
	q.advanceFloorLocked(&b)
	q.applyLocked(&b)
}
