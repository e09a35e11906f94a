package broker

// The store reader: a queue's deliveries read their records from the
// store with the queue's lock released, so that a cold read holds up
// neither the publishes completing into the queue nor its acks.
//
// A dispatch (queue.dispatchFromLocked) delivers, under the lock, the
// messages whose records are in the body cache. At the first that is not,
// it stops and asks for the reader, a goroutine per queue that lives for
// one request (like the dispatcher). The reader takes from the ready list,
// under the lock, as many messages as the consumers have credit for, and
// holds them in queue.reading: out of ready, below the ack floor, counted
// as ready. It reads their records with the lock released, then takes the
// lock again and delivers them in order, as a dispatch would, putting back
// what lost its consumer or credit meanwhile. While a read is in flight no
// other dispatch delivers, so no message overtakes those being read;
// they ask the reader to look again instead.
//
// basic.get reads the same way, one message at a time (readAsideLocked).
//
// What may happen meanwhile: an ack, a nack or a new consumer (it finds
// the read in flight and leaves the delivery to the reader); a purge or a
// leaving consumer (they wait for the read to end, readDone, so a purge
// takes what was put back and a cancelled consumer first gets what was
// routed to it); the queue's deletion or an index reset (the read is void:
// its records went with the queue). Acks cannot concern the messages being
// read: they have no delivery tag yet.

import (
	"math"

	"github.com/sluicemq/sluice/internal/store"
)

// readBatchMax bounds the records the reader reads per round.
const readBatchMax = 256

// requestReadLocked asks for the reader; fresh is the dispatch's.
func (q *queue) requestReadLocked(fresh uint64) {
	q.needRead = true
	q.readFresh = min(q.readFresh, fresh)
	if !q.readerOn {
		q.readerOn = q.env.dispatchers.Go(q.runReader) // false: the broker is closing
	}
}

// runReader is the reader's life: read and deliver until no dispatch asks
// for a read any more.
func (q *queue) runReader() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.needRead {
		fresh := q.readFresh
		q.needRead, q.readFresh = false, ^uint64(0)
		q.readAndDeliverLocked(fresh)
		q.dispatchFromLocked(^uint64(0), false) // the cached ones behind; may ask again
	}
	q.readerOn = false
}

// readAndDeliverLocked is one round of the reader; it releases the lock
// while it reads.
func (q *queue) readAndDeliverLocked(fresh uint64) {
	if q.deleted || !q.servesHere() {
		return
	}
	want := min(q.creditCountLocked(), readBatchMax)
	var b store.Batch
	batch := make([]entry, 0, want)
	for len(batch) < want {
		e, ok := q.ready.pop()
		if !ok {
			break
		}
		if e.seq < fresh && q.expiredLocked(e) {
			q.discardLocked(&b, e, reasonExpired)
			continue
		}
		// In reading before its seq is held: a rebuild of the held seqs
		// (holdSeqLocked) keeps only those it finds held.
		batch = append(batch, e)
		q.reading = batch
		q.holdSeqLocked(e.seq)
	}
	if len(batch) == 0 {
		q.reading = nil
		q.finishDispatchLocked(&b)
		return
	}
	gen := q.indexGen
	q.mu.Unlock()
	recs := make([][]byte, len(batch))
	errs := make([]error, len(batch))
	for i, e := range batch {
		recs[i], errs[i] = q.readRecord(e)
	}
	q.mu.Lock()
	defer q.readDone.Broadcast()
	if q.deleted || gen != q.indexGen {
		q.reading = nil
		return // the records went with the queue's index
	}
	for i, e := range batch {
		// What is not delivered yet stays in reading: below the floor
		// and the delivered mark (firstReadyLocked).
		q.reading = batch[i+1:]
		e.flags &^= entryCached // taken from the cache, if it was there
		if errs[i] != nil {
			q.env.log.Error("read message for delivery; dropping it", "queue", q.name, "seq", e.seq, "err", errs[i])
			q.removeLocked(&b, e)
			continue
		}
		c := q.pickConsumerLocked()
		if c == nil || !q.deliverRecordLocked(&b, c, e, recs[i]) {
			// Lost its consumer or credit meanwhile: back to ready,
			// in its place by seq, with what follows.
			for _, r := range batch[i:] {
				r.flags &^= entryCached
				q.ready.putBack(r)
			}
			break
		}
	}
	q.reading = nil
	q.finishDispatchLocked(&b)
}

// readAsideLocked reads the record of e, taken from ready for basic.get,
// with the lock released, holding e in reading meanwhile as the reader
// holds its batch. gone reports that the queue was deleted or its index
// reset meanwhile: e went with it.
func (q *queue) readAsideLocked(e entry) (rec []byte, gone bool, err error) {
	q.reading = []entry{e}
	q.holdSeqLocked(e.seq)
	gen := q.indexGen
	q.mu.Unlock()
	rec, err = q.readRecord(e)
	q.mu.Lock()
	q.reading = nil
	q.readDone.Broadcast()
	if q.needRead { // a dispatch found the read in flight and left its work
		q.requestReadLocked(^uint64(0))
	}
	return rec, q.deleted || gen != q.indexGen, err
}

// finishDispatchLocked ends a dispatch: the floor, the deferred writes,
// the expiry wake-up.
func (q *queue) finishDispatchLocked(b *store.Batch) {
	q.advanceFloorLocked(b)
	q.applyLocked(b)
	q.armExpiryLocked()
}

// waitReadLocked waits, releasing the lock meanwhile, until no read is in
// flight.
func (q *queue) waitReadLocked() {
	for q.reading != nil {
		q.readDone.Wait()
	}
}

// readingLocked reports whether seq is being read.
func (q *queue) readingLocked(seq uint64) bool {
	for _, e := range q.reading {
		if e.seq == seq {
			return true
		}
	}
	return false
}

// readyLenLocked counts the ready messages, those being read included.
func (q *queue) readyLenLocked() int { return q.ready.len() + len(q.reading) }

// creditCountLocked returns how many deliveries the queue's consumers
// could take now.
func (q *queue) creditCountLocked() int {
	if len(q.consumers) == 0 {
		return 0
	}
	if q.opts().SingleActiveConsumer {
		return q.consumers[0].ch.creditCount(q.consumers[0])
	}
	n := 0
	for _, c := range q.consumers {
		if n += c.ch.creditCount(c); n >= readBatchMax {
			break
		}
	}
	return n
}

// creditCount returns how many more deliveries c could take now.
func (ch *Channel) creditCount(c *consumer) int {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if !ch.creditLocked(c) {
		return 0
	}
	n := math.MaxInt
	if ch.globalPrefetch > 0 {
		n = min(n, int(ch.globalPrefetch)-int(ch.unackedCount))
	}
	switch {
	case c.noAck:
		n = min(n, int(ch.env.window)-int(ch.noAckInFlight))
	case c.prefetch > 0:
		n = min(n, int(c.prefetch)-int(c.unacked))
	}
	return max(n, 0)
}
