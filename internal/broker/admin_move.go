package broker

// The operator's move: taking ready messages out of a queue into another
// queue or through an exchange, as the dead-letter workflow's redrive does
// (package dlq decides which message goes where and rewrites it; this file
// only moves). Each message is one move (move.go): one store batch puts it
// in its targets and deletes it from its source, so after a crash a
// message is in exactly one of the two places. A message its targets
// refuse (their x-schema or size limit, a full reject-publish queue) stays
// where it was.

import (
	"sync"

	"github.com/sluicemq/sluice/internal/message"
)

// MoveOut is one message to take out of a queue (Broker.Move).
type MoveOut struct {
	ID uint64 // the message's id in its queue
	// Message is the message as its destination gets it.
	Message *message.Message
	// Queue or Exchange is the destination: a queue directly (not
	// routed), or an exchange routing Message by its routing key.
	Queue, Exchange string
	// Version is the StoredMessage.Version of the read Message was made
	// from: if an edit replaced the message since, it is refused and
	// stays, rather than moved as it was before the edit.
	Version uint64
}

// MoveOptions change how Move moves.
type MoveOptions struct {
	// DryRun checks every move and reports, moving nothing.
	DryRun bool
	// Records, when set, is called for each message about to move, in
	// order, with the outcome of every message of the call as the moves
	// were planned (nil: on its way); the records it returns are stored in
	// that message's move batch, so they are durable exactly when it
	// moved (a redrive task's progress).
	Records func(i int, planned []error) []TaskRecord
}

// Move moves the ready messages outs out of a queue, each atomically. The
// result holds each message's outcome (nil: moved, or in a dry run
// movable): a message that is unacked, delayed or gone, whose destination
// is missing or routes it nowhere, or which its destination refuses stays
// where it is. The call fails as a whole only when the queue is missing.
func (b *Broker) Move(vhostName, queueName string, outs []MoveOut, o MoveOptions) ([]error, error) {
	src, err := b.lookupLocalQueue(vhostName, queueName) // metasync.go
	if err != nil {
		return nil, err
	}
	errs := make([]error, len(outs))
	moves := make([]*heldMove, 0, len(outs))
	for i, out := range outs {
		targets, err := src.vh.moveTargets(out)
		if err == nil {
			err = src.vh.checkMove(out.Message, out.Exchange, targets)
		}
		if err != nil {
			errs[i] = err
			continue
		}
		moves = append(moves, &heldMove{id: out.ID, i: i, msg: out.Message, version: out.Version, targets: targets, err: &errs[i]})
	}
	if o.DryRun {
		src.mu.Lock()
		for _, mv := range moves {
			*mv.err = src.readyUneditedLocked(mv.id, mv.version)
		}
		src.mu.Unlock()
		return errs, nil
	}
	src.holdMoves(moves)
	var planned []error
	if o.Records != nil {
		planned = append([]error(nil), errs...)
	}
	var wg sync.WaitGroup
	for _, mv := range moves {
		if *mv.err != nil {
			continue
		}
		req := &moveReq{src: src, e: mv.entry, msg: mv.msg, targets: mv.targets, sync: src.durable, keep: true}
		if o.Records != nil {
			req.also = taskBatch(o.Records(mv.i, planned))
		}
		res := mv.err
		req.done = func(err error) {
			if err != nil {
				*res = err
			}
			wg.Done()
		}
		wg.Add(1)
		b.env.move(req)
	}
	wg.Wait()
	return errs, nil
}

// heldMove is one message of a Move on its way out of its queue.
type heldMove struct {
	id      uint64
	i       int // its place in the call's outs
	msg     *message.Message
	version uint64 // MoveOut.Version
	targets []*queue
	entry   entry  // once held
	err     *error // its outcome
}

// moveTargets finds the queues out goes to.
func (vh *vhost) moveTargets(out MoveOut) ([]*queue, error) {
	vh.mu.RLock()
	defer vh.mu.RUnlock()
	if out.Exchange != "" {
		x := vh.exchanges[out.Exchange]
		if x == nil {
			return nil, vh.noExchange(out.Exchange)
		}
		targets := vh.routeLocked(x, out.Message)
		if len(targets) == 0 {
			return nil, errorf(NotFound, "message %d is unroutable from exchange '%s' with routing key '%s'",
				out.ID, out.Exchange, out.Message.RoutingKey)
		}
		return targets, nil
	}
	q := vh.queues[out.Queue]
	if q == nil {
		return nil, vh.noQueue(out.Queue)
	}
	return []*queue{q}, nil
}

// holdMoves takes the moving messages out of the ready list into the held
// table. A message that is no longer ready gets its error.
func (q *queue) holdMoves(moves []*heldMove) {
	q.mu.Lock()
	defer q.mu.Unlock()
	want := make(map[uint64]bool, len(moves))
	bySeq := make(map[uint64]*heldMove, len(moves))
	for _, mv := range moves {
		if err := q.readyUneditedLocked(mv.id, mv.version); err != nil {
			*mv.err = err
			continue
		}
		want[mv.id] = true
		bySeq[mv.id] = mv
	}
	for _, e := range q.ready.removeSeqs(want) {
		q.holdLocked(e)
		bySeq[e.seq].entry = e
	}
}
