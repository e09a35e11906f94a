package broker

// Dead lettering: a message rejected without requeue, expired, dropped by a
// length limit or past its delivery limit is republished to its queue's
// dead-letter exchange with an x-death history, as RabbitMQ 3.13 does.
//
// queue.discardLocked cannot route or wait for the write pipeline (it runs
// under queue.mu), so it parks the entry
// in the queue's held table (move.go) and hands a job to the dead-letterer
// goroutine. The goroutine reads the message, builds the dead letter,
// routes it and moves it (env.move): after a crash the message is in the
// source or in the targets, never both, never neither.

import (
	"sync"
	"time"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/records"
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
	e      entry  // the source entry, in src.held (when rec is nil)
	rec    []byte // the record of a message that never entered src (reject-publish-dlx)
	reason string
	at     time.Time
	// done, when set, is called once the job is over: the dead letter is in
	// its targets, was dropped, or stays in its source because the broker
	// closed (Connection.waitPublished waits for it).
	done func()
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
// their source queues (they come back after a restart); whoever waits for
// them stops waiting.
func (d *deadLetterer) close() {
	close(d.stop)
	d.wg.Wait()
	d.mu.Lock()
	jobs := d.jobs
	d.jobs = nil
	d.mu.Unlock()
	for _, j := range jobs {
		j.over()
	}
}

// over calls j's done hook, if any.
func (j deadJob) over() {
	if j.done != nil {
		j.done()
	}
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
			for i, j := range jobs {
				select {
				case <-d.stop:
					for _, j := range jobs[i:] {
						j.over()
					}
					return
				default:
				}
				d.process(j)
			}
		}
	}
}

func (d *deadLetterer) finished(j deadJob) {
	d.mu.Lock()
	d.busy--
	d.mu.Unlock()
	j.over()
}

// process dead-letters one message: a move from its source (or from
// nowhere, for a publish a full queue refused) to the queues its
// dead-letter exchange routes it to.
func (d *deadLetterer) process(j deadJob) {
	src := j.src
	mv := &moveReq{done: func(error) { d.finished(j) }}
	if j.rec == nil {
		mv.src, mv.e = src, j.e
	}
	// drop ends the job without a move: the message leaves its source.
	drop := func(what string, err error) {
		if err != nil {
			d.env.log.Error(what+"; dropping it", "queue", src.name, "seq", j.e.seq, "err", err)
		}
		if mv.src != nil {
			src.release(j.e.seq, true, nil)
		}
		d.finished(j)
	}
	rec := j.rec
	if rec == nil {
		var err error
		if rec, err = src.readRecord(j.e); err != nil {
			drop("read message to dead-letter", err)
			return
		}
	}
	m, err := records.DecodeRecord(rec)
	if err != nil {
		drop("decode message to dead-letter", err)
		return
	}
	mv.msg = deadLetterMessage(m, src, j.reason, j.at)
	mv.targets = src.vh.deadLetterTargets(src, mv.msg, j.reason)
	if len(mv.targets) == 0 {
		drop("", nil)
		return
	}
	src.countDeadLettered(j.reason)
	d.env.move(mv)
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
	q, _, err := vh.declareQueue(nil, QueueDecl{Name: PoisonQueue, Durable: true}, defaultQueueOptions(), false)
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

// deadLettersLocked reports whether discardLocked would dead-letter (rather than
// drop) a message leaving for reason.
func (q *queue) deadLettersLocked(reason string) bool {
	return q.opts().HasDeadLetter || (reason == reasonDeliveryLimit && !q.env.noPoisonQueue && q.name != PoisonQueue)
}
