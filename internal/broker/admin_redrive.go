package broker

// Redrive: moving dead letters back to the queue each one died in (from
// its x-death header), or to a named queue or exchange. Each move is one
// publish through the write pipeline that carries the delete of the message
// from its dead letter queue in the same store batch, so after a crash a
// message is in exactly one of the two queues. While a move is in flight
// the message is held in the source queue's unacked set: no consumer can
// take it and the source's ack floor stays below it.

import (
	"errors"
	"fmt"
	"sync"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/store"
)

// RedriveCountHeader counts how many times a message was redriven.
const RedriveCountHeader = "x-redrive-count"

// MoveTarget says where redriven messages go. The zero value sends each
// message to the queue it died in (its newest x-death entry's queue).
type MoveTarget struct {
	Queue    string // a queue, through the default exchange
	Exchange string // or an exchange, routed with the message's routing key
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
	moves := make([]*move, 0, len(ids))
	for i, id := range ids {
		results[i].ID = id
		mv, err := b.planMove(src, id, t)
		if err != nil {
			results[i].Err = err
			continue
		}
		results[i].To = mv.to
		mv.result = &results[i]
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
	var wg sync.WaitGroup
	for _, mv := range moves {
		if mv.result.Err != nil {
			continue
		}
		wg.Add(1)
		b.submitMove(src, mv, wg.Done)
	}
	wg.Wait()
	return results, nil
}

// move is one message on its way out of a dead letter queue.
type move struct {
	id      uint64
	to      string
	msg     *message.Message
	targets []*queue
	entry   entry
	result  *MoveResult
}

// planMove reads the message and finds its destination.
func (b *Broker) planMove(src *queue, id uint64, t MoveTarget) (*move, error) {
	rec, err := b.env.st.Get(src.id, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, b.noMessage(src, id)
	}
	if err != nil {
		return nil, internalError("read message", err)
	}
	m, err := decodeRecord(rec)
	if err != nil {
		return nil, internalError("decode message", err)
	}
	m = redriven(m)
	vh := src.vh
	vh.mu.RLock()
	defer vh.mu.RUnlock()
	mv := &move{id: id, msg: m}
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

// holdMoves takes the moving messages out of the ready list into the
// unacked set. A message that is no longer ready gets its error.
func (q *queue) holdMoves(moves []*move) {
	q.mu.Lock()
	defer q.mu.Unlock()
	want := make(map[uint64]bool, len(moves))
	for _, mv := range moves {
		if _, err := q.readyEntryLocked(mv.id); err != nil {
			mv.result.Err = err
			continue
		}
		want[mv.id] = true
	}
	for _, e := range q.ready.removeSeqs(want) {
		q.unacked[e.seq] = e
		q.holdSeqLocked(e.seq)
		for _, mv := range moves {
			if mv.id == e.seq {
				mv.entry = e
			}
		}
	}
}

// submitMove publishes mv's message to its targets with the delete from
// src in the same batch; done is called once the move settled.
func (b *Broker) submitMove(src *queue, mv *move, done func()) {
	req, err := newPublishReq(mv.msg, mv.targets, nil, b.env.now())
	if err != nil {
		mv.result.Err = err
		src.finishMove(mv, false)
		done()
		return
	}
	also := &store.Batch{}
	also.DeleteMessage(src.id, mv.id)
	if mv.entry.flags&entryState != 0 {
		also.DeleteState(src.id, mv.id)
	}
	req.sync = req.sync || src.durable
	req.also = also
	req.done = func(err error) {
		if err != nil {
			mv.result.Err = err
		}
		src.finishMove(mv, err == nil)
		done()
	}
	if err := b.env.submit(req); err != nil {
		mv.result.Err = err
		src.finishMove(mv, false)
		done()
	}
}

// finishMove ends a held move: the message left (moved) or returns to the
// ready list.
func (q *queue) finishMove(mv *move, moved bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, ok := q.unacked[mv.id]
	if !ok || q.deleted {
		return
	}
	delete(q.unacked, mv.id)
	var batch store.Batch
	if moved {
		if e.flags&entryCached != 0 {
			q.env.cache.drop(cacheKey{q.id, e.seq})
		}
	} else {
		q.ready.putBack(e)
		q.dispatchLocked()
	}
	q.advanceFloorLocked(&batch)
	q.applyLocked(&batch)
}
