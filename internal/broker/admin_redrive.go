package broker

// Redrive: moving dead letters back to the queue each one died in (from
// its x-death header), or to a named queue or exchange. Each message is
// one move (move.go): one store batch puts it in its targets and deletes
// it from its dead letter queue, so after a crash a message is in exactly
// one of the two queues. A message its targets refuse (their x-schema or
// size limit, a full reject-publish queue) stays where it was.

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/records"
	"github.com/sluicemq/sluice/internal/store"
)

// RedriveCountHeader counts how many times a message was redriven.
const RedriveCountHeader = "x-redrive-count"

// MoveTarget says where redriven messages go. The zero value sends each
// message to the queue it died in (its newest x-death entry's queue).
type MoveTarget struct {
	Queue    string // a queue, through the default exchange
	Exchange string // or an exchange, routed with the message's routing key
	// Allow, when set, is asked about every queue a message would go to;
	// its error keeps that message where it is and is its result (the
	// caller's write permission on each destination).
	Allow func(queue string) error
	// Progress, when set, is called for each message about to move, in
	// order, with the results of the messages before it in this call as
	// they stood when the moves were planned (an Err nil there is a
	// message on its way); the records it returns are stored in that
	// message's move batch, so they are durable exactly when it moved.
	Progress func(i int, before []MoveResult) []TaskRecord
}

// MoveResult is the outcome of one message's move.
type MoveResult struct {
	ID  uint64
	To  string // "queue 'orders'" or "exchange 'x'"
	Err error  // nil when moved (or, in a dry run, movable)
}

// Redrive moves the ready messages ids of a queue. A message that is
// unacked, gone, or has no destination gets an error in its result and
// stays where it is; the call fails as a whole only when the queue is
// missing. With dryRun it checks and reports without moving.
func (b *Broker) Redrive(vhostName, queueName string, ids []uint64, t MoveTarget, dryRun bool) ([]MoveResult, error) {
	src, err := b.lookupQueue(vhostName, queueName)
	if err != nil {
		return nil, err
	}
	vh := src.vh
	if t.Exchange != "" {
		vh.mu.RLock()
		x := vh.exchanges[t.Exchange]
		vh.mu.RUnlock()
		if x == nil {
			return nil, vh.noExchange(t.Exchange)
		}
	}
	if t.Queue != "" {
		if _, err := b.lookupQueue(vhostName, t.Queue); err != nil {
			return nil, err
		}
	}
	results := make([]MoveResult, len(ids))
	moves := make([]*redriveMove, 0, len(ids))
	for i, id := range ids {
		results[i].ID = id
		mv, err := b.planMove(src, id, t)
		if err != nil {
			results[i].Err = err
			continue
		}
		results[i].To = mv.to
		mv.i, mv.result = i, &results[i]
		moves = append(moves, mv)
	}
	if dryRun {
		src.mu.Lock()
		for _, mv := range moves {
			if _, err := src.readyEntryLocked(mv.id); err != nil {
				mv.result.Err = err
			}
		}
		src.mu.Unlock()
		return results, nil
	}
	src.holdMoves(moves)
	planned := slices.Clone(results)
	var wg sync.WaitGroup
	for _, mv := range moves {
		if mv.result.Err != nil {
			continue
		}
		req := &moveReq{src: src, e: mv.entry, msg: mv.msg, targets: mv.targets, sync: src.durable, keep: true}
		if t.Progress != nil {
			req.also = taskBatch(t.Progress(mv.i, planned[:mv.i]))
		}
		res := mv.result
		req.done = func(err error) {
			if err != nil {
				res.Err = err
			}
			wg.Done()
		}
		wg.Add(1)
		b.env.move(req)
	}
	wg.Wait()
	return results, nil
}

// redriveMove is one message planned to leave a dead letter queue.
type redriveMove struct {
	id      uint64
	i       int // its place in the call's ids
	to      string
	msg     *message.Message // as its targets get it
	targets []*queue
	entry   entry // once held
	result  *MoveResult
}

// planMove reads the message and finds its destination.
func (b *Broker) planMove(src *queue, id uint64, t MoveTarget) (*redriveMove, error) {
	rec, err := b.env.st.Get(src.id, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, b.noMessage(src, id)
	}
	if err != nil {
		return nil, internalError("read message", err)
	}
	m, err := records.DecodeRecord(rec)
	if err != nil {
		return nil, internalError("decode message", err)
	}
	m = redriven(m)
	mv, err := src.vh.redriveTargets(m, id, t)
	if err != nil {
		return nil, err
	}
	for _, q := range mv.targets {
		if t.Allow == nil {
			break
		}
		if err := t.Allow(q.name); err != nil {
			return nil, err
		}
	}
	if err := src.vh.checkMove(m, t.Exchange, mv.targets); err != nil {
		return nil, err
	}
	return mv, nil
}

// redriveTargets finds where the redriven m goes: the target, else the
// queue it died in, with the exchange and routing key it died with.
func (vh *vhost) redriveTargets(m *message.Message, id uint64, t MoveTarget) (*redriveMove, error) {
	vh.mu.RLock()
	defer vh.mu.RUnlock()
	mv := &redriveMove{id: id, msg: m}
	switch {
	case t.Exchange != "":
		x := vh.exchanges[t.Exchange]
		if x == nil {
			return nil, vh.noExchange(t.Exchange)
		}
		m.Exchange = t.Exchange
		mv.to = fmt.Sprintf("exchange '%s'", t.Exchange)
		mv.targets = vh.routeLocked(x, m)
		if len(mv.targets) == 0 {
			return nil, errorf(NotFound, "message %d is unroutable from exchange '%s' with routing key '%s'", id, t.Exchange, m.RoutingKey)
		}
		return mv, nil
	case t.Queue != "":
		mv.to = fmt.Sprintf("queue '%s'", t.Queue)
		q := vh.queues[t.Queue]
		if q == nil {
			return nil, vh.noQueue(t.Queue)
		}
		mv.targets = []*queue{q}
		return mv, nil
	}
	d, ok := LastDeath(m)
	if !ok {
		return nil, errorf(PreconditionFailed, "message %d has no x-death header naming the queue it died in; give a target", id)
	}
	mv.to = fmt.Sprintf("queue '%s'", d.Queue)
	q := vh.queues[d.Queue]
	if q == nil {
		return nil, errorf(NotFound, "message %d died in queue '%s', which no longer exists in vhost '%s'; give a target", id, d.Queue, vh.name)
	}
	if d.Exchange != "" || len(d.Keys) > 0 {
		m.Exchange = d.Exchange
		if len(d.Keys) > 0 {
			m.RoutingKey = d.Keys[0]
		}
	}
	mv.targets = []*queue{q}
	return mv, nil
}

// redriven returns a copy of m with x-redrive-count incremented; its
// x-death history stays.
func redriven(m *message.Message) *message.Message {
	c := *m
	h := make(message.Table, len(m.Properties.Headers)+1)
	for k, v := range m.Properties.Headers {
		h[k] = v
	}
	n, _ := intValue(h[RedriveCountHeader])
	h[RedriveCountHeader] = n + 1
	c.Properties.Headers = h
	c.Properties.Flags |= message.FlagHeaders
	c.Body = append([]byte(nil), m.Body...)
	return &c
}

// holdMoves takes the moving messages out of the ready list into the held
// table. A message that is no longer ready gets its error.
func (q *queue) holdMoves(moves []*redriveMove) {
	q.mu.Lock()
	defer q.mu.Unlock()
	want := make(map[uint64]bool, len(moves))
	bySeq := make(map[uint64]*redriveMove, len(moves))
	for _, mv := range moves {
		if _, err := q.readyEntryLocked(mv.id); err != nil {
			mv.result.Err = err
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
