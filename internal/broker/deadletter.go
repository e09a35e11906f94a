package broker

// Dead lettering: a message rejected without requeue, expired, dropped by a
// length limit or past its delivery limit is republished to its queue's
// dead-letter exchange with an x-death history, as RabbitMQ 3.13 does.
//
// queue.discardLocked cannot route or wait for the write pipeline (it runs
// under queue.mu), so it parks the entry in the queue's dying set (which holds the ack floor below it) and hands a
// job to the dead-letterer goroutine. The goroutine reads the message,
// builds the dead letter, routes it and submits it to the write pipeline with
// the delete from the source queue in the same batch: after a crash the
// message is in the source or in the targets, never both, never neither.

import (
	"sync"
	"time"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/store"
)

// Dead-letter reasons, as RabbitMQ names them.
const (
	reasonRejected      = "rejected"
	reasonExpired       = "expired"
	reasonMaxLen        = "maxlen"
	reasonDeliveryLimit = "delivery_limit"
)

// PoisonQueue is the durable per-vhost queue that receives messages past
// their x-delivery-limit from a queue without a dead-letter exchange.
const PoisonQueue = "sluice.dead-letters"

// deadJob is one message to dead-letter.
type deadJob struct {
	src    *queue
	e      entry  // the source entry, held in src.dying (when rec is nil)
	rec    []byte // the record of a message that never entered src (reject-publish-dlx)
	reason string
	at     time.Time
}

// deadLetterer owns the goroutine that dead-letters messages.
type deadLetterer struct {
	env  *env
	wake chan struct{}
	stop chan struct{}
	wg   sync.WaitGroup

	mu   sync.Mutex
	jobs []deadJob
	busy int // jobs taken by the goroutine and not finished
}

func startDeadLetterer(e *env) *deadLetterer {
	d := &deadLetterer{env: e, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	d.wg.Add(1)
	go d.run()
	return d
}

// add queues a job; it never blocks (callers hold queue locks).
func (d *deadLetterer) add(j deadJob) {
	d.mu.Lock()
	d.jobs = append(d.jobs, j)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// close stops the goroutine. Jobs not yet done leave their messages in
// their source queues (they come back after a restart).
func (d *deadLetterer) close() {
	close(d.stop)
	d.wg.Wait()
}

// idle reports whether no job is pending (for tests).
func (d *deadLetterer) idle() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.jobs) == 0 && d.busy == 0
}

func (d *deadLetterer) run() {
	defer d.wg.Done()
	for {
		select {
		case <-d.stop:
			return
		case <-d.wake:
		}
		for {
			d.mu.Lock()
			jobs := d.jobs
			d.jobs = nil
			d.busy += len(jobs)
			d.mu.Unlock()
			if len(jobs) == 0 {
				break
			}
			for _, j := range jobs {
				select {
				case <-d.stop:
					return
				default:
				}
				d.process(j)
			}
		}
	}
}

func (d *deadLetterer) finished() {
	d.mu.Lock()
	d.busy--
	d.mu.Unlock()
}

// process dead-letters one message.
func (d *deadLetterer) process(j deadJob) {
	src := j.src
	rec := j.rec
	if rec == nil {
		var err error
		rec, err = src.readRecord(j.e)
		if err != nil {
			d.env.log.Error("read message to dead-letter; dropping it", "queue", src.name, "seq", j.e.seq, "err", err)
			src.finishDying(j.e.seq, true)
			d.finished()
			return
		}
	}
	m, err := decodeRecord(rec)
	if err != nil {
		d.env.log.Error("decode message to dead-letter; dropping it", "queue", src.name, "err", err)
		if j.rec == nil {
			src.finishDying(j.e.seq, true)
		}
		d.finished()
		return
	}
	dl := deadLetterMessage(m, src, j.reason, j.at)
	targets := src.vh.deadLetterTargets(src, dl, j.reason)
	if len(targets) == 0 {
		if j.rec == nil {
			src.finishDying(j.e.seq, true)
		}
		d.finished()
		return
	}
	src.countDeadLettered(j.reason)
	req, err := newPublishReq(dl, targets, nil, d.env.now())
	if err != nil {
		d.env.log.Error("encode dead letter; dropping it", "queue", src.name, "err", err)
		if j.rec == nil {
			src.finishDying(j.e.seq, true)
		}
		d.finished()
		return
	}
	if j.rec == nil {
		also := &store.Batch{}
		also.DeleteMessage(src.id, j.e.seq)
		if j.e.flags&entryState != 0 {
			also.DeleteState(src.id, j.e.seq)
		}
		req.also = also
		req.sync = req.sync || (src.durable && j.e.flags&entryPersistent != 0)
	}
	req.done = func(err error) {
		if j.rec == nil {
			// A store failure leaves the message where it was; a full
			// reject-publish target drops it there, as RabbitMQ does.
			src.finishDying(j.e.seq, err == nil || CodeOf(err) != Internal)
		}
		d.finished()
	}
	if err := d.env.submit(req); err != nil {
		req.done(err)
	}
}

// readRecord reads the stored record of e (which is in no list).
func (q *queue) readRecord(e entry) ([]byte, error) {
	if e.flags&entryCached != 0 {
		if rec, ok := q.env.cache.take(cacheKey{q.id, e.seq}); ok {
			return rec, nil
		}
	}
	return q.env.st.Get(q.id, e.seq)
}

// finishDying ends the dying state of seq: gone (moved or dropped, deleted
// here if it was not moved in the commit batch) or back to ready.
func (q *queue) finishDying(seq uint64, gone bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, ok := q.dying[seq]
	if !ok {
		return
	}
	delete(q.dying, seq)
	if q.deleted {
		return
	}
	var b store.Batch
	if gone {
		// Deleting again after a move is harmless: the move batch
		// already deleted the key; this covers the drop paths.
		q.removeLocked(&b, e)
	} else {
		q.ready.putBack(e)
		q.dispatchLocked()
	}
	q.advanceFloorLocked(&b)
	q.applyLocked(&b)
}

// deadLetterTargets resolves where a dead letter from src goes: the queues
// its dead-letter exchange routes it to, minus those that would close a
// cycle; the poison queue for a delivery-limit death without a DLX.
func (vh *vhost) deadLetterTargets(src *queue, dl *message.Message, reason string) []*queue {
	if !src.opts().HasDeadLetter {
		if reason != reasonDeliveryLimit || vh.env.noPoisonQueue {
			return nil
		}
		q := vh.poisonQueue()
		if q == nil || q == src {
			return nil
		}
		return []*queue{q}
	}
	vh.mu.RLock()
	x := vh.exchanges[src.opts().DeadLetterExchange]
	var qs []*queue
	if x != nil {
		qs = vh.routeLocked(x, dl)
	}
	vh.mu.RUnlock()
	if x == nil {
		vh.env.log.Warn("dead-letter exchange missing; dropping the message", "queue", src.name,
			"exchange", src.opts().DeadLetterExchange)
		return nil
	}
	if reason == reasonRejected {
		return qs
	}
	deaths, _ := dl.Properties.Headers["x-death"].([]any)
	kept := qs[:0]
	for _, q := range qs {
		if isDeathCycle(q.name, deaths) {
			vh.env.log.Warn("dead-letter cycle detected; dropping the message for that queue",
				"queue", q.name, "from", src.name, "reason", reason)
			continue
		}
		kept = append(kept, q)
	}
	return kept
}

// isDeathCycle applies RabbitMQ's rule: a dead letter going to a queue it
// already died in is a cycle when no death since then (that one included)
// was a rejection, i.e. it cycles with no client involved.
func isDeathCycle(queueName string, deaths []any) bool {
	for i, d := range deaths {
		t, ok := d.(message.Table)
		if !ok {
			continue
		}
		if t["queue"] != queueName {
			continue
		}
		for _, d := range deaths[:i+1] {
			if t, ok := d.(message.Table); ok && t["reason"] == reasonRejected {
				return false
			}
		}
		return true
	}
	return false
}

// poisonQueue returns the vhost's poison queue, declaring it (durable) on
// demand.
func (vh *vhost) poisonQueue() *queue {
	vh.mu.RLock()
	q := vh.queues[PoisonQueue]
	vh.mu.RUnlock()
	if q != nil {
		return q
	}
	q, _, err := vh.declareQueue(nil, QueueDecl{Name: PoisonQueue, Durable: true}, defaultQueueOptions())
	if err != nil {
		vh.env.log.Error("declare the poison queue", "vhost", vh.name, "err", err)
		return nil
	}
	return q
}

// deadLetterMessage builds the dead letter of m dying in src for reason:
// the x-death entry for (src, reason) first (its count grown when it
// existed), x-first-death-* kept, x-last-death-* set, BCC stripped (and CC
// when the dead-letter routing key replaces the routing keys),
// the expiration removed (recorded as original-expiration), published to
// the dead-letter exchange with the dead-letter routing key or the
// original one.
func deadLetterMessage(m *message.Message, src *queue, reason string, at time.Time) *message.Message {
	dl := *m
	p := &dl.Properties
	h := make(message.Table, len(p.Headers)+8)
	for k, v := range p.Headers {
		h[k] = v
	}
	rks := []any{m.RoutingKey}
	if cc, ok := h["CC"].([]any); ok {
		for _, k := range cc {
			if s, ok := k.(string); ok {
				rks = append(rks, s)
			}
		}
	}
	// As RabbitMQ: BCC never travels; CC goes when a dead-letter routing
	// key replaces the routing keys.
	delete(h, "BCC")
	if src.opts().HasDeadLetterRoutingKey || !src.opts().HasDeadLetter {
		delete(h, "CC")
	}
	old, _ := h["x-death"].([]any)
	deaths := make([]any, 0, len(old)+1)
	var found message.Table
	for _, d := range old {
		t, ok := d.(message.Table)
		if ok && found == nil && t["queue"] == src.name && t["reason"] == reason {
			found = make(message.Table, len(t))
			for k, v := range t {
				found[k] = v
			}
			n, _ := intValue(t["count"])
			found["count"] = n + 1
			continue
		}
		deaths = append(deaths, d)
	}
	if found == nil {
		found = message.Table{
			"count":        int64(1),
			"reason":       reason,
			"queue":        src.name,
			"time":         time.Unix(at.Unix(), 0).UTC(),
			"exchange":     m.Exchange,
			"routing-keys": rks,
		}
		if p.Flags&message.FlagExpiration != 0 {
			found["original-expiration"] = p.Expiration
		}
	}
	h["x-death"] = append([]any{found}, deaths...)
	if _, ok := h["x-first-death-reason"]; !ok {
		h["x-first-death-queue"] = src.name
		h["x-first-death-reason"] = reason
		h["x-first-death-exchange"] = m.Exchange
	}
	h["x-last-death-queue"] = src.name
	h["x-last-death-reason"] = reason
	h["x-last-death-exchange"] = m.Exchange
	p.Headers = h
	p.Flags |= message.FlagHeaders
	p.Flags &^= message.FlagExpiration
	p.Expiration = ""
	if src.opts().HasDeadLetter {
		dl.Exchange = src.opts().DeadLetterExchange
		if src.opts().HasDeadLetterRoutingKey {
			dl.RoutingKey = src.opts().DeadLetterRoutingKey
		}
	} else {
		dl.Exchange = ""
		dl.RoutingKey = PoisonQueue
	}
	return &dl
}

// dyingLocked reports whether discardLocked would dead-letter (rather than
// drop) a message leaving for reason.
func (q *queue) deadLettersLocked(reason string) bool {
	return q.opts().HasDeadLetter || (reason == reasonDeliveryLimit && !q.env.noPoisonQueue && q.name != PoisonQueue)
}
