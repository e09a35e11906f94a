package broker

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/records"
	"github.com/sluicemq/sluice/internal/store"
)

// queue is one queue: its definition, its message index and its consumers.
type queue struct {
	env  *env
	vh   *vhost
	id   store.QueueID
	name string

	durable, exclusive, autoDelete bool
	// quorum marks a replicated queue (quorum.go); serving says this node
	// leads its group and may deliver and write it.
	quorum  bool
	serving atomic.Bool
	// home is the node holding a classic queue declared on another node
	// of the cluster ("" for one of this node's): its definition came
	// through the metadata group, its messages live there (metasync.go).
	home            string
	replicated      replicatedCount // what a non-serving member reports (quorum.go)
	declaredDurable bool            // as declared (exclusive queues are never stored)
	owner           *Connection     // exclusive queues only
	args            message.Table   // as declared
	// optsP are the effective options: the declared arguments merged with
	// the matching policies (policy.go); a policy change swaps them.
	optsP atomic.Pointer[QueueOptions]

	// nextSeq is the seq the next published message gets. Only the commit
	// loop touches it (recovery sets it before the loop starts).
	nextSeq uint64
	// inflight counts messages the write pipeline has stored for the queue
	// but not yet enqueued (their group is waiting for its sync).
	inflight atomic.Int64

	// bindings are the bindings that point at the queue. Guarded by vh.mu.
	bindings []*binding

	stats msgCounters // stats.go

	mu          sync.Mutex
	ready       readyIndex
	unacked     map[uint64]entry
	unackedSeqs heap[uint64]         // seqs held out of ready (unacked, delayed, held); may hold stale ones (lazy deletion)
	delayed     map[uint64]retryWait // returned messages waiting out their x-retry-backoff
	held        map[uint64]entry     // messages on their way out through a move (move.go)
	edits       editLog              // the operator's edits, for moves planned before one (edits.go)
	timeouts    map[uint64]tracked   // unacked deliveries, for x-consumer-timeout
	consumers   []*consumer
	rr          int  // round-robin cursor into consumers
	hadConsumer bool // for auto-delete
	exclusiveC  bool // the (only) consumer is exclusive
	deleted     bool
	floor       uint64          // the ack floor last persisted
	mark        uint64          // the delivered mark last queued for the store (durable queues; package records)
	markBuf     records.MarkBuf // where the encoded marks are cut from
	high        uint64          // one past the highest seq added to the index
	lastUsed    int64           // unix ms of the last declare, get or consumer change (x-expires)
	names       records.Names   // the names of the last record read for delivery
	expArmed    int64           // the due time (unix ms) the expirer will wake the queue at; 0: none (expiry.go)
	waking      bool            // a dispatcher is on its way (wakeLocked)
	fresh       uint64          // the lowest seq enqueued since the dispatcher last ran; ^0: none

	// The store reader (read.go): a dispatch that meets a record not in
	// the body cache leaves it to the reader, which reads records with
	// the lock released.
	reading   []entry   // taken from ready, their records being read; nil: no read in flight
	readDone  sync.Cond // L is &mu; broadcast when a read in flight ends
	needRead  bool      // a dispatch stopped at a record the reader must read
	readerOn  bool      // the reader goroutine is running or on its way
	readFresh uint64    // the lowest fresh seq (as dispatchFromLocked's) of the reads asked for; ^0: none
	indexGen  uint64    // counts resets of the index (resetIndexLocked), which void a read in flight
}

func newQueue(vh *vhost, id store.QueueID, name string) *queue {
	q := &queue{env: vh.env, vh: vh, id: id, name: name, nextSeq: 1, high: 1, floor: 0, fresh: ^uint64(0), readFresh: ^uint64(0),
		unacked: make(map[uint64]entry), delayed: make(map[uint64]retryWait), held: make(map[uint64]entry),
		timeouts: make(map[uint64]tracked), lastUsed: vh.env.now().UnixMilli()}
	q.readDone.L = &q.mu
	return q
}

// enqueue adds entries the write pipeline has stored (commit.go). It runs
// on the pipeline's completion goroutine, so it delivers nothing itself:
// when a consumer can take the new messages it wakes the queue's
// dispatcher, which delivers them, then applies the length limits and
// expiry; otherwise it applies them at once.
func (q *queue) enqueue(es []entry) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		var b store.Batch
		for _, e := range es {
			b.DeleteMessage(q.id, e.seq)
			q.env.cache.drop(cacheKey{q.id, e.seq})
		}
		q.applyLocked(&b)
		return
	}
	for _, e := range es {
		q.ready.push(e)
		q.high = max(q.high, e.seq+1)
	}
	q.countEnqueued(len(es))
	if q.anyCreditLocked() {
		q.wakeLocked(es[0].seq)
		return
	}
	q.enforceLimitsLocked()
	q.dropExpiredLocked()
}

// wakeLocked has the queue's dispatcher deliver, entries from seq fresh on
// without an expiry check. A dispatcher is a goroutine that lives for one
// wake-up; at most one is pending per queue, and it delivers everything
// that became ready before it took the lock.
func (q *queue) wakeLocked(fresh uint64) {
	q.fresh = min(q.fresh, fresh)
	if q.waking {
		return
	}
	q.waking = q.env.dispatchers.Go(q.runDispatcher) // false: the broker is closing
}

// runDispatcher is the dispatcher's wake-up. Consumers that could take the
// new messages when they were enqueued get them even when their TTL is
// already up (TTL 0), as RabbitMQ hands a publish to a waiting consumer
// before it checks expiry; the rest expire now.
func (q *queue) runDispatcher() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.dispatchWokenLocked(false)
}

// dispatchPending is dispatchWokenLocked(true) for a caller that does not
// hold the queue's lock.
func (q *queue) dispatchPending() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.dispatchWokenLocked(true)
}

// dispatchWokenLocked does the pending wake-up's work, if any. With inline
// it is a consumer that leaves, on its own goroutine, making sure it first
// gets what was enqueued for it (messages published before a basic.cancel
// reach the consumers that were there): it waits for a read in flight and
// reads what is not cached itself, under the lock. The lock may be
// released meanwhile (read.go).
func (q *queue) dispatchWokenLocked(inline bool) {
	fresh := ^uint64(0)
	if inline {
		q.waitReadLocked()
		if q.needRead { // the read asked for is done here
			fresh, q.needRead, q.readFresh = q.readFresh, false, ^uint64(0)
		} else if !q.waking {
			return
		}
	} else if !q.waking {
		return
	}
	fresh = min(fresh, q.fresh)
	q.waking, q.fresh = false, ^uint64(0)
	q.dispatchFromLocked(fresh, inline)
	q.enforceLimitsLocked()
	q.dropExpiredLocked()
}

// anyCreditLocked reports whether a consumer could take a message now.
func (q *queue) anyCreditLocked() bool {
	if q.deleted || len(q.consumers) == 0 {
		return false
	}
	if q.opts().SingleActiveConsumer {
		return q.consumers[0].ch.hasCredit(q.consumers[0])
	}
	for _, c := range q.consumers {
		if c.ch.hasCredit(c) {
			return true
		}
	}
	return false
}

// dispatch hands ready messages to consumers with credit.
func (q *queue) dispatch() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.dispatchLocked()
}

func (q *queue) dispatchLocked() { q.dispatchFromLocked(^uint64(0), false) }

// dispatchFromLocked is dispatchLocked where entries from seq fresh on,
// just enqueued, are delivered without an expiry check. It delivers the
// messages whose records are in the body cache; at the first that is not
// it stops and leaves the store read to the reader (read.go), which reads
// with the lock released and delivers in order. With inline the caller
// reads it under the lock instead (see dispatchWokenLocked). While a read
// is in flight it delivers nothing, so that nothing overtakes the
// messages being read.
func (q *queue) dispatchFromLocked(fresh uint64, inline bool) {
	if q.reading != nil {
		q.needRead = q.needRead || q.anyCreditLocked() // the reader looks again when its read is done
		return
	}
	var b store.Batch
	for !q.deleted && q.servesHere() && len(q.consumers) > 0 && q.ready.len() > 0 {
		c := q.pickConsumerLocked()
		if c == nil {
			break
		}
		e, _ := q.ready.pop()
		if e.seq < fresh && q.expiredLocked(e) {
			q.discardLocked(&b, e, reasonExpired)
			continue
		}
		rec, ok := q.takeCached(e)
		if !ok && !inline {
			q.ready.putBack(e)
			q.requestReadLocked(fresh)
			break
		}
		if !ok {
			var err error
			rec, err = q.env.st.Get(q.id, e.seq)
			if err != nil {
				q.env.log.Error("read message for delivery; dropping it", "queue", q.name, "seq", e.seq, "err", err)
				q.removeLocked(&b, e)
				continue
			}
		}
		if !q.deliverRecordLocked(&b, c, e, rec) {
			q.ready.putBack(e) // lost the credit meanwhile
			break
		}
	}
	q.finishDispatchLocked(&b)
}

// deliverRecordLocked delivers e, whose record is rec, to c. It reports
// false when c lost its credit meanwhile; e is then the caller's to put
// back. A record that does not split is logged and removed.
func (q *queue) deliverRecordLocked(b *store.Batch, c *consumer, e entry, rec []byte) bool {
	parts, err := records.SplitRecord(rec, &q.names)
	var d *Delivery
	if err == nil {
		d, err = newDelivery(parts, e)
	}
	if err != nil {
		q.env.log.Error("read message for delivery; dropping it", "queue", q.name, "seq", e.seq, "err", err)
		q.removeLocked(b, e)
		return true
	}
	if !c.ch.deliver(c, q, e.seq, nextGen(e), d) {
		return false
	}
	q.deliveredLocked(b, e, c.noAck)
	q.countDelivered(e, c.noAck, false)
	q.trackLocked(c.ch, d.DeliveryTag, e.seq, c.noAck)
	return true
}

// pickConsumerLocked chooses the consumer for the next message: among those
// with credit, the highest priority, round robin among equals.
func (q *queue) pickConsumerLocked() *consumer {
	n := len(q.consumers)
	if q.opts().SingleActiveConsumer {
		// The oldest consumer is the active one; the others wait.
		if n > 0 && q.consumers[0].ch.hasCredit(q.consumers[0]) {
			return q.consumers[0]
		}
		return nil
	}
	var best *consumer
	bestAt := 0
	for i := range n {
		at := (q.rr + i) % n
		c := q.consumers[at]
		if (best == nil || c.priority > best.priority) && c.ch.hasCredit(c) {
			best, bestAt = c, at
		}
	}
	if best != nil {
		q.rr = bestAt + 1
	}
	return best
}

// readRecord reads the stored record of e, from the body cache or the
// store; it takes neither the queue's lock nor needs it.
func (q *queue) readRecord(e entry) ([]byte, error) {
	if rec, ok := q.takeCached(e); ok {
		return rec, nil
	}
	return q.env.st.Get(q.id, e.seq)
}

// takeCached takes e's record from the body cache, if it is there; it
// needs only the cache's own lock.
func (q *queue) takeCached(e entry) ([]byte, bool) {
	if e.flags&entryCached == 0 {
		return nil, false
	}
	return q.env.cache.take(cacheKey{q.id, e.seq})
}

// newDelivery builds the delivery of a message read as parts. Its
// properties go out as stored, except that a message delivered before
// carries x-delivery-count (long): how many times it was delivered and
// returned, which the broker adds to the headers it decodes.
func newDelivery(parts records.Parts, e entry) (*Delivery, error) {
	d := &Delivery{
		seq:           e.seq,
		Redelivered:   e.flags&entryRedelivered != 0,
		Exchange:      parts.Exchange,
		RoutingKey:    parts.RoutingKey,
		RawProperties: parts.Props,
		Body:          parts.Body,
	}
	if e.deliveries > 0 {
		p, err := records.DecodeProperties(parts.Props)
		if err != nil {
			return nil, err
		}
		if p.Headers == nil {
			p.Headers = make(message.Table, 1)
		}
		p.Headers["x-delivery-count"] = int64(e.deliveries)
		p.Flags |= message.FlagHeaders
		d.Properties, d.RawProperties = p, nil
	}
	return d, nil
}

// nextGen is e's delivery count once delivered (as deliveredLocked counts).
func nextGen(e entry) uint16 {
	if e.deliveries < ^uint16(0) {
		return e.deliveries + 1
	}
	return e.deliveries
}

// deliveredLocked records that e went out: removed at once for no-ack,
// else kept as unacked (and, for a persistent message of a durable queue,
// marked in the store so it comes back redelivered after a restart).
func (q *queue) deliveredLocked(b *store.Batch, e entry, noAck bool) {
	e.flags &^= entryCached
	if e.deliveries < ^uint16(0) {
		e.deliveries++
	}
	if noAck {
		q.removeLocked(b, e)
		return
	}
	if q.durable && e.flags&entryPersistent != 0 {
		if e.deliveries == 1 && q.firstReadyLocked(e.seq) {
			// Every message below e that is still stored went out
			// before: the delivered mark covers e (records.MarkSeq).
			if e.seq+1 > q.mark {
				q.mark = e.seq + 1
				b.PutState(q.id, records.MarkSeq, q.markBuf.Encode(q.mark))
			}
		} else {
			b.PutState(q.id, e.seq, records.EncodeState(uint32(e.deliveries)))
			e.flags |= entryState
		}
	}
	q.unacked[e.seq] = e
	q.holdSeqLocked(e.seq)
}

// firstReadyLocked reports whether no ready message has a seq below seq.
// Messages enter the ready index in seq order (the commit loop's
// completer) and a returned one goes back with its delivery count, so a
// message delivered when nothing below it is ready has only delivered
// messages below it.
func (q *queue) firstReadyLocked(seq uint64) bool {
	if s, ok := q.ready.minSeq(); ok && s < seq {
		return false
	}
	for _, r := range q.reading { // not delivered yet either (read.go)
		if r.seq < seq {
			return false
		}
	}
	return true
}

// holdSeqLocked notes that seq is held out of the ready list (unacked,
// delayed or held by a move), so the ack floor stays at or below it.
func (q *queue) holdSeqLocked(seq uint64) {
	q.unackedSeqs.push(seq)
	live := len(q.unacked) + len(q.delayed) + len(q.held) + len(q.reading)
	if n := q.unackedSeqs.len(); n > 64 && n > 2*live {
		// Settled seqs above a long-held one never reach the top:
		// rebuild the heap from the live sets now and then.
		q.unackedSeqs = heap[uint64]{items: make([]uint64, 0, 2*live)}
		for s := range q.unacked {
			q.unackedSeqs.push(s)
		}
		for s := range q.delayed {
			q.unackedSeqs.push(s)
		}
		for s := range q.held {
			q.unackedSeqs.push(s)
		}
		for _, e := range q.reading { // read.go: out of ready, not delivered yet
			q.unackedSeqs.push(e.seq)
		}
	}
}

// heldLocked reports whether seq is held out of the ready list.
func (q *queue) heldLocked(seq uint64) bool {
	if _, ok := q.unacked[seq]; ok {
		return true
	}
	if _, ok := q.delayed[seq]; ok {
		return true
	}
	if _, ok := q.held[seq]; ok {
		return true
	}
	return q.readingLocked(seq)
}

// removeLocked deletes a message that is in neither list any more.
func (q *queue) removeLocked(b *store.Batch, e entry) {
	b.DeleteMessage(q.id, e.seq)
	if e.flags&entryState != 0 {
		b.DeleteState(q.id, e.seq)
	}
	if e.flags&entryCached != 0 {
		q.env.cache.drop(cacheKey{q.id, e.seq})
	}
}

// settle ends unacked deliveries: acked, requeued or discarded. A delivery
// whose generation (its delivery count when it went out) no longer matches
// was taken back meanwhile (consumer timeout) and is ignored.
func (q *queue) settle(ds []settled, how settleKind, by *deadLetters) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		return
	}
	var b store.Batch
	var ackedBuf [16]entry
	acked := ackedBuf[:0]
	for _, d := range ds {
		e, ok := q.unacked[d.seq]
		if !ok || (d.gen != 0 && e.deliveries != d.gen) {
			continue
		}
		delete(q.unacked, d.seq)
		delete(q.timeouts, d.seq)
		switch how {
		case settleAck:
			acked = append(acked, e)
		case settleRequeue:
			q.returnLocked(&b, e, by)
		case settleDiscard:
			q.discardByLocked(&b, e, reasonRejected, by)
		}
	}
	if how == settleRequeue {
		// As RabbitMQ: drop-head applies to requeued messages too, before
		// they are delivered again.
		q.enforceLimitsLocked()
	}
	q.dispatchLocked()
	q.advanceFloorLocked(&b)
	q.removeAckedLocked(&b, acked)
	q.applyLocked(&b)
}

// removeAckedLocked deletes acked messages, after advanceFloorLocked: those
// below the floor it persisted need no deletes of their own, since a
// SetFloor means that every message below it is gone (the store clears the
// prefix with one range delete now and then). A consumer that acks in
// order thus costs the store one floor move per batch instead of three
// point deletes per message.
func (q *queue) removeAckedLocked(b *store.Batch, acked []entry) {
	for _, e := range acked {
		if e.seq >= q.floor {
			q.removeLocked(b, e)
		} else if e.flags&entryCached != 0 {
			q.env.cache.drop(cacheKey{q.id, e.seq})
		}
	}
}

// settled names one delivery to settle: its seq and generation.
type settled struct {
	seq uint64
	gen uint16 // 0: any
}

// returnLocked takes back a delivery that failed (nack or reject with
// requeue, channel closed, consumer timeout): past x-delivery-limit it is
// dead-lettered; with x-retry-backoff it waits; else it is ready again in
// its place.
func (q *queue) returnLocked(b *store.Batch, e entry, by *deadLetters) {
	e.flags |= entryRedelivered
	if q.opts().DeliveryLimit >= 0 && int64(e.deliveries) > q.opts().DeliveryLimit {
		q.discardByLocked(b, e, reasonDeliveryLimit, by)
		return
	}
	if len(q.opts().RetryBackoff) > 0 {
		q.delayLocked(b, e)
		return
	}
	q.ready.putBack(e)
}

type settleKind uint8

const (
	settleAck settleKind = iota
	settleRequeue
	settleDiscard
)

// discardLocked is the one way a message leaves a queue unacknowledged
// (rejected without requeue, dropped by a length limit): the place where
// dead lettering plugs in.
func (q *queue) discardLocked(b *store.Batch, e entry, reason string) {
	q.discardByLocked(b, e, reason, nil)
}

// discardByLocked is discardLocked for a settle of a connection that by
// tracks (nil: none): its later gets and declares wait for the dead letter.
func (q *queue) discardByLocked(b *store.Batch, e entry, reason string, by *deadLetters) {
	q.countDiscarded(reason)
	if q.env.dead == nil || !q.deadLettersLocked(reason) {
		q.removeLocked(b, e)
		return
	}
	q.holdLocked(e)
	j := deadJob{src: q, e: e, reason: reason, at: q.env.now()}
	if by != nil {
		j.done = by.start()
	}
	q.env.dead.add(j)
}

// expiredLocked reports whether e's TTL has passed: due is now or earlier,
// as RabbitMQ (so a TTL of 0 has always passed).
func (q *queue) expiredLocked(e entry) bool {
	return e.expires != 0 && q.env.now().UnixMilli() >= e.expires
}

// dropExpiredLocked discards expired messages at the head of the queue
// (as RabbitMQ, expiry is checked at the head: a message behind one with a
// longer TTL waits for it).
func (q *queue) dropExpiredLocked() {
	var b store.Batch
	for {
		e, ok := q.ready.peek()
		if !ok || !q.expiredLocked(e) {
			break
		}
		q.ready.pop()
		q.discardLocked(&b, e, reasonExpired)
	}
	if b.Len() > 0 {
		q.advanceFloorLocked(&b)
		q.applyLocked(&b)
	}
	q.armExpiryLocked()
}

// advanceFloorLocked persists the ack floor when it moved up.
func (q *queue) advanceFloorLocked(b *store.Batch) {
	if !q.durable {
		return
	}
	floor := q.high
	if s, ok := q.ready.minSeq(); ok {
		floor = min(floor, s)
	}
	for q.unackedSeqs.len() > 0 {
		s := q.unackedSeqs.peek()
		if q.heldLocked(s) {
			floor = min(floor, s)
			break
		}
		q.unackedSeqs.pop()
	}
	if floor > q.floor {
		b.SetFloor(q.id, floor)
		q.floor = floor
	}
}

// applyLocked defers b's changes to the write pipeline (commit.go): they
// are applied unsynced, in order, and ride the next synced write. It
// empties b.
func (q *queue) applyLocked(b *store.Batch) {
	q.env.pipe.Defer(b)
}

// get takes one ready message for basic.get.
func (q *queue) get(ch *Channel, noAck bool) (*Delivery, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var b store.Batch
	defer q.applyLocked(&b)
	q.touchLocked()
	if !q.servesHere() {
		return nil, q.notServedError()
	}
	for {
		q.waitReadLocked() // what is being read comes first
		e, ok := q.ready.pop()
		if !ok {
			return nil, nil
		}
		if q.expiredLocked(e) {
			q.discardLocked(&b, e, reasonExpired)
			continue
		}
		rec, ok := q.takeCached(e)
		var err error
		if !ok {
			q.applyLocked(&b) // the lock is released for the read
			var gone bool
			if rec, gone, err = q.readAsideLocked(e); gone {
				return nil, nil
			}
		}
		var d *Delivery
		if err == nil {
			var parts records.Parts
			if parts, err = records.SplitRecord(rec, &q.names); err == nil {
				d, err = newDelivery(parts, e)
			}
		}
		if err != nil {
			q.env.log.Error("read message for get; dropping it", "queue", q.name, "seq", e.seq, "err", err)
			q.removeLocked(&b, e)
			continue
		}
		d.MessageCount = uint32(min(q.ready.len(), 1<<32-1))
		ch.deliverGet(q, e.seq, nextGen(e), noAck, d)
		q.deliveredLocked(&b, e, noAck)
		q.countDelivered(e, noAck, true)
		q.trackLocked(ch, d.DeliveryTag, e.seq, noAck)
		q.advanceFloorLocked(&b)
		q.armExpiryLocked()
		return d, nil
	}
}

// purge removes the ready messages and returns how many. The removal is
// applied (for a durable queue synced) before purge returns, after the
// queue's lock is released; when the store fails the messages stay and
// purge returns the error.
func (q *queue) purge() (uint32, error) {
	q.mu.Lock()
	q.waitReadLocked() // what is being read is delivered or back in ready
	if err := q.env.fence.check(); err != nil {
		q.mu.Unlock()
		return 0, err
	}
	if !q.servesHere() {
		q.mu.Unlock()
		return 0, q.notServedError()
	}
	floor := q.floor
	es := q.ready.takeAll()
	if len(es) == 0 {
		q.mu.Unlock()
		return 0, nil
	}
	var b store.Batch
	deleteEntries(&b, q.id, es, q.env.cache)
	q.advanceFloorLocked(&b)
	q.applyLocked(&b)
	q.mu.Unlock()
	// A purge is rare and its client is told it happened: make it stick
	// before purge-ok, so purged messages never come back after a crash.
	var err error
	if q.durable {
		err = q.env.pipe.Sync()
	} else {
		err = q.env.pipe.Flush()
	}
	if err != nil {
		q.mu.Lock()
		q.floor = min(q.floor, floor)
		for _, e := range es {
			e.flags &^= entryCached // deleteEntries dropped the bodies from the cache
			q.ready.putBack(e)
		}
		q.mu.Unlock()
		return 0, err
	}
	return uint32(min(len(es), 1<<32-1)), nil
}

// deleteEntries adds deletes for es to b: ranges for runs of seqs.
func deleteEntries(b *store.Batch, id store.QueueID, es []entry, cache *bodyCache) {
	slices.SortFunc(es, func(x, y entry) int { return compareSeq(x.seq, y.seq) })
	for i := 0; i < len(es); {
		j := i + 1
		for j < len(es) && es[j].seq == es[j-1].seq+1 {
			j++
		}
		if j-i == 1 {
			b.DeleteMessage(id, es[i].seq)
			if es[i].flags&entryState != 0 {
				b.DeleteState(id, es[i].seq)
			}
		} else {
			b.DeleteRange(id, es[i].seq, es[j-1].seq+1)
		}
		i = j
	}
	for _, e := range es {
		if e.flags&entryCached != 0 {
			cache.drop(cacheKey{id, e.seq})
		}
	}
}

func compareSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// counts returns the ready and consumer counts.
func (q *queue) counts() (ready, consumers uint32) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.dropExpiredLocked()
	return uint32(min(q.readyLenLocked(), 1<<32-1)), uint32(len(q.consumers))
}

// addConsumer attaches c, enforcing consumer exclusivity.
func (q *queue) addConsumer(c *consumer) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		return errorf(NotFound, "no queue '%s' in vhost '%s'", q.name, q.vh.name)
	}
	// Checked under q.mu, as Serving changes it: a consumer is attached
	// only where the queue is served (quorum.go).
	if !q.servesHere() {
		return q.notServedError()
	}
	if c.ch.consumerGone(c) {
		// Its channel closed meanwhile (a session the connection lost).
		return errorf(PreconditionFailed, "channel is closed")
	}
	if q.exclusiveC || (c.exclusive && len(q.consumers) > 0) {
		return errorf(ResourceLocked, "queue '%s' in vhost '%s' in exclusive use", q.name, q.vh.name)
	}
	q.touchLocked()
	q.consumers = append(q.consumers, c)
	q.exclusiveC = c.exclusive
	q.hadConsumer = true
	q.dispatchLocked()
	return nil
}

// removeConsumer detaches c and reports whether the queue should now be
// auto-deleted.
func (q *queue) removeConsumer(c *consumer) (autoDelete bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.dispatchWokenLocked(true) // may release the lock: look c up after it
	i := slices.Index(q.consumers, c)
	if i < 0 {
		return false
	}
	q.consumers = slices.Delete(q.consumers, i, i+1)
	q.touchLocked()
	if c.exclusive {
		q.exclusiveC = false
	}
	if q.rr > i {
		q.rr--
	}
	return q.autoDelete && len(q.consumers) == 0 && !q.deleted
}

// dropLocked marks the queue deleted, removes its messages from the store
// and returns its consumers (to be told) and its ready count.
func (q *queue) dropLocked(b *store.Batch) (consumers []*consumer, ready uint32) {
	q.deleted = true
	consumers, q.consumers = q.consumers, nil
	n := q.resetIndexLocked()
	if !q.quorum && q.home == "" {
		// A quorum queue's messages were dropped on every member by
		// its group's deletion entry (cluster.Handler.QueueDeleted); a
		// queue of another node has none here.
		b.DropQueue(q.id)
	}
	return consumers, uint32(min(n, 1<<32-1))
}

// batchHolder allocates a batch on first use.
type batchHolder struct{ b *store.Batch }

func (h *batchHolder) get() *store.Batch {
	if h.b == nil {
		h.b = &store.Batch{}
	}
	return h.b
}
