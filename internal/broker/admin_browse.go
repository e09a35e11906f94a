package broker

// Browsing a queue without consuming, and the operator's edits of single
// messages: read, replace in place, delete, purge. Browsing reads records
// straight from the store (never through the body cache, which a delivery
// empties) and classifies them under queue.mu, so it changes nothing: no
// delivery count, no redelivered flag, no reordering.

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/records"
	"github.com/sluicemq/sluice/internal/store"
)

// Message states as the API reports them.
const (
	StateReady   = "ready"
	StateUnacked = "unacked"
	StateDelayed = "delayed"
)

// StoredMessage is one message a queue holds, as an operator sees it.
type StoredMessage struct {
	ID          uint64 // the message's seq in its queue: stable while it stays there
	State       string // StateReady, StateUnacked or StateDelayed
	Deliveries  int    // times delivered from this queue
	Redelivered bool
	ReadyAt     time.Time // when a delayed message becomes ready (zero otherwise)
	Message     *message.Message
	// Version identifies the content read: a Move or ReplaceMessage given
	// it refuses the message if an edit replaced that content since
	// (edits.go).
	Version uint64
}

// Select narrows a browse. The zero Select lists every message.
type Select struct {
	// State, when set, is StateReady, StateUnacked or StateDelayed: only
	// messages in that state are listed.
	State string
	// Match, when set, is asked about every message read; only those it
	// accepts are listed. It runs without the broker's locks held.
	Match func(*message.Message) bool
}

func (s Select) match(m *message.Message) bool { return s.Match == nil || s.Match(m) }

// BrowsePage is one page of a browse.
type BrowsePage struct {
	Messages []StoredMessage
	// Next is the id to pass as after for the next page; More says whether
	// the scan stopped before the end of the queue.
	Next uint64
	More bool
}

// browseScanCap bounds the records one page scans, so a filter that
// matches little answers in bounded time with More set.
const browseScanCap = 20000

// Browse returns up to limit messages of the queue with ids above after
// that sel selects, in id order, without consuming or changing them: a
// queue listed page by page (the dead-letter workflow's filters are its
// Match).
func (b *Broker) Browse(vhostName, queueName string, after uint64, limit int, sel Select) (BrowsePage, error) {
	q, err := b.lookupLocalQueue(vhostName, queueName) // metasync.go
	if err != nil {
		return BrowsePage{}, err
	}
	if limit <= 0 {
		limit = 100
	}
	if sel.State == StateUnacked || sel.State == StateDelayed {
		return b.browseFew(q, after, limit, sel)
	}
	q.mu.Lock()
	from, high, version := q.lowestLocked(), q.high, q.edits.clock
	q.mu.Unlock()
	from = max(from, after+1)
	type cand struct {
		seq uint64
		m   *message.Message
	}
	var (
		cands   []cand
		page    BrowsePage
		scanned int
		derr    error
	)
	if from < high {
		err = b.env.st.Scan(q.id, from, func(seq uint64, rec []byte) bool {
			if seq >= high {
				return false
			}
			page.Next = seq
			scanned++
			if sel.State == StateReady && !q.isReady(seq) {
				page.More = scanned >= browseScanCap
				return !page.More
			}
			m, err := records.DecodeRecord(slices.Clone(rec))
			if err != nil {
				derr = fmt.Errorf("queue %q message %d: %w", q.name, seq, err)
				return false
			}
			if sel.match(m) {
				cands = append(cands, cand{seq, m})
			}
			if len(cands) >= limit || scanned >= browseScanCap {
				page.More = true
				return false
			}
			return true
		})
	}
	if err == nil {
		err = derr
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return BrowsePage{}, internalError("browse queue", err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, c := range cands {
		if sm, ok := q.classifyLocked(c.seq); ok && (sel.State == "" || sm.State == sel.State) {
			sm.Message, sm.Version = c.m, version
			page.Messages = append(page.Messages, sm)
		}
	}
	if page.More && page.Next+1 >= q.high {
		page.More = false
	}
	return page, nil
}

// isReady reports whether seq is in the queue and neither delivered nor
// delayed.
func (q *queue) isReady(seq uint64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	sm, ok := q.classifyLocked(seq)
	return ok && sm.State == StateReady
}

// browseFew is Browse for the unacked or delayed messages: they are held
// in the queue's index, so it reads just them instead of scanning a queue
// that may hold a million ready messages.
func (b *Broker) browseFew(q *queue, after uint64, limit int, sel Select) (BrowsePage, error) {
	var seqs []uint64
	q.mu.Lock()
	if sel.State == StateUnacked {
		for s := range q.unacked {
			if s > after {
				seqs = append(seqs, s)
			}
		}
	} else {
		for s := range q.delayed {
			if s > after {
				seqs = append(seqs, s)
			}
		}
	}
	version := q.edits.clock
	q.mu.Unlock()
	slices.Sort(seqs)
	var page BrowsePage
	for i, seq := range seqs {
		if i >= browseScanCap || len(page.Messages) >= limit {
			page.More = true
			break
		}
		page.Next = seq
		rec, err := b.env.st.Get(q.id, seq)
		if errors.Is(err, store.ErrNotFound) {
			continue // acked or moved since
		}
		if err != nil {
			return BrowsePage{}, internalError("browse queue", err)
		}
		m, err := records.DecodeRecord(rec)
		if err != nil {
			return BrowsePage{}, internalError("browse queue", fmt.Errorf("queue %q message %d: %w", q.name, seq, err))
		}
		if !sel.match(m) {
			continue
		}
		q.mu.Lock()
		sm, ok := q.classifyLocked(seq)
		q.mu.Unlock()
		if ok && sm.State == sel.State {
			sm.Message, sm.Version = m, version
			page.Messages = append(page.Messages, sm)
		}
	}
	return page, nil
}

// lowestLocked returns the lowest seq the queue holds (q.high when empty).
func (q *queue) lowestLocked() uint64 {
	low := q.high
	if s, ok := q.ready.minSeq(); ok {
		low = min(low, s)
	}
	for s := range q.unacked {
		low = min(low, s)
	}
	for s := range q.delayed {
		low = min(low, s)
	}
	for s := range q.held {
		low = min(low, s)
	}
	return low
}

// classifyLocked finds seq in the queue's index.
func (q *queue) classifyLocked(seq uint64) (StoredMessage, bool) {
	if e, ok := q.unacked[seq]; ok {
		return StoredMessage{ID: seq, State: StateUnacked, Deliveries: int(e.deliveries),
			Redelivered: e.flags&entryRedelivered != 0}, true
	}
	if w, ok := q.delayed[seq]; ok {
		return StoredMessage{ID: seq, State: StateDelayed, Deliveries: int(w.e.deliveries),
			Redelivered: w.e.flags&entryRedelivered != 0, ReadyAt: time.UnixMilli(w.due).UTC()}, true
	}
	if e, ok := q.ready.find(seq); ok {
		return StoredMessage{ID: seq, State: StateReady, Deliveries: int(e.deliveries),
			Redelivered: e.flags&entryRedelivered != 0}, true
	}
	return StoredMessage{}, false
}

// holdsLocked reports whether seq is in the queue: ready, unacked,
// delayed or held.
func (q *queue) holdsLocked(seq uint64) bool {
	_, held := q.held[seq]
	_, ok := q.classifyLocked(seq)
	return held || ok
}

// find returns the ready entry with seq.
func (r *readyList) find(seq uint64) (*entry, bool) {
	if e, ok := r.fifo.find(seq); ok {
		return e, true
	}
	for i := range r.back.items {
		if r.back.items[i].seq == seq {
			return &r.back.items[i], true
		}
	}
	return nil, false
}

// resize records a new body size for the ready entry seq, keeping the
// byte counts of the index and of the entry's level.
func (r *readyIndex) resize(seq uint64, size uint32) {
	for i := range r.levels {
		l := &r.levels[i]
		if e, ok := l.find(seq); ok {
			l.bytes = l.bytes - uint64(e.size) + uint64(size)
			r.bytes = r.bytes - uint64(e.size) + uint64(size)
			e.size = size
			return
		}
	}
}

// removeSeqs takes the ready entries whose seqs are in want out of the
// list and returns them.
func (r *readyList) removeSeqs(want map[uint64]bool) []entry {
	var out []entry
	// Fast path: a redrive of a whole dead letter queue takes it from the
	// head, chunk by chunk.
	for len(out) < len(want) && r.fifo.len() > 0 && want[r.fifo.at(0).seq] {
		e := r.fifo.popFront()
		r.bytes -= uint64(e.size)
		out = append(out, e)
	}
	if len(out) == len(want) {
		return out
	}
	var keep entryFifo
	r.fifo.all(func(e entry) {
		if want[e.seq] {
			out = append(out, e)
			r.bytes -= uint64(e.size)
			return
		}
		keep.push(e)
	})
	r.fifo = keep
	if r.back.len() > 0 {
		var back heap[entry]
		for _, e := range r.back.items {
			if want[e.seq] {
				out = append(out, e)
				r.bytes -= uint64(e.size)
				continue
			}
			back.push(e)
		}
		r.back = back
	}
	return out
}

func (b *Broker) noMessage(q *queue, id uint64) *Error {
	return errorf(NotFound, "no message %d in queue '%s' in vhost '%s'", id, q.name, q.vh.name)
}

// Message reads one message by id without consuming it.
func (b *Broker) Message(vhostName, queueName string, id uint64) (StoredMessage, error) {
	q, err := b.lookupLocalQueue(vhostName, queueName) // metasync.go
	if err != nil {
		return StoredMessage{}, err
	}
	q.mu.Lock()
	version := q.edits.clock // before the read: an edit after it shows
	q.mu.Unlock()
	rec, err := b.env.st.Get(q.id, id)
	if errors.Is(err, store.ErrNotFound) {
		return StoredMessage{}, b.noMessage(q, id)
	}
	if err != nil {
		return StoredMessage{}, internalError("read message", err)
	}
	m, err := records.DecodeRecord(rec)
	if err != nil {
		return StoredMessage{}, internalError("decode message", err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	sm, ok := q.classifyLocked(id)
	if !ok {
		return StoredMessage{}, b.noMessage(q, id)
	}
	sm.Message, sm.Version = m, version
	return sm, nil
}

// readyEntryLocked returns the ready entry of id, or NotFound (gone) or
// PreconditionFailed (delivered and not yet acked: the API's 409).
func (q *queue) readyEntryLocked(id uint64) (*entry, error) {
	if _, ok := q.unacked[id]; ok {
		return nil, errorf(PreconditionFailed, "message %d of queue '%s' in vhost '%s' is unacked (being delivered); try again later",
			id, q.name, q.vh.name)
	}
	if _, ok := q.delayed[id]; ok {
		return nil, errorf(PreconditionFailed, "message %d of queue '%s' in vhost '%s' is delayed (waiting out a retry backoff); try again once it is ready",
			id, q.name, q.vh.name)
	}
	e, ok := q.ready.find(id)
	if !ok {
		return nil, errorf(NotFound, "no message %d in queue '%s' in vhost '%s'", id, q.name, q.vh.name)
	}
	return e, nil
}

// ReplaceMessage replaces a ready message's exchange, routing key,
// properties and body in place: it keeps its id, place and delivery count.
// version is the StoredMessage.Version of the read m was made from
// (AnyVersion: m was not made from a read): a message edited since is
// PreconditionFailed, so of two edits of one read the second does not undo
// the first. A message that is unacked is PreconditionFailed; one that is
// gone is NotFound; one the queue's x-schema or size limit refuses is
// PreconditionFailed with a *ValidationError (and stays as it was).
//
// The message is held (move.go) while its new record is written, synced,
// without the queue's lock: consumers neither get the old message nor
// wait for the write.
func (b *Broker) ReplaceMessage(vhostName, queueName string, id uint64, m *message.Message, version uint64) error {
	if err := CheckRoutingKey(m.RoutingKey); err != nil { // names.go: else no consumer could be sent it
		return err
	}
	q, err := b.lookupLocalQueue(vhostName, queueName) // metasync.go
	if err != nil {
		return err
	}
	if err := q.vh.checkMove(m, "", []*queue{q}); err != nil {
		return err
	}
	if _, err := q.holdReady(id, version); err != nil {
		return err
	}
	err = b.rewriteRecord(q, id, m)
	q.release(id, false, func(e *entry) {
		if err != nil {
			return
		}
		q.edits.edited(id, q.holdsLocked)
		if e.flags&entryCached != 0 {
			b.env.cache.drop(cacheKey{q.id, id})
			e.flags &^= entryCached
		}
		e.size = uint32(min(len(m.Body), 1<<32-1))
		if m.Persistent() {
			e.flags |= entryPersistent
		} else {
			e.flags &^= entryPersistent
		}
	})
	return err
}

// rewriteRecord stores m as the record of message id of q, keeping its
// publish time, synced for a durable queue.
func (b *Broker) rewriteRecord(q *queue, id uint64, m *message.Message) error {
	old, err := b.env.st.Get(q.id, id)
	if errors.Is(err, store.ErrNotFound) {
		return b.noMessage(q, id)
	}
	if err != nil {
		return internalError("read message", err)
	}
	rec, err := records.EncodeRecord(m, records.RecordPublished(old))
	if err != nil {
		return &Error{Code: InvalidArgument, Reason: err.Error(), Err: err}
	}
	var batch store.Batch
	batch.DeleteMessage(q.id, id)
	if q.durable {
		x, err := records.IndexOfRecord(rec)
		if err != nil {
			return internalError("index message", err)
		}
		batch.PutIndexed(q.id, id, rec, records.EncodeIndex(x))
	} else {
		batch.PutMessage(q.id, id, rec)
	}
	if err := b.env.st.Apply(&batch, q.durable); err != nil {
		return internalError("replace message", err)
	}
	return nil
}

// holdReady takes the ready message id, if not edited since version,
// into the held table.
func (q *queue) holdReady(id, version uint64) (entry, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.readyUneditedLocked(id, version); err != nil {
		return entry{}, err
	}
	es := q.ready.removeSeqs(map[uint64]bool{id: true})
	q.holdLocked(es[0])
	return es[0], nil
}

// DeleteMessage removes one ready message. The delete is synced for a
// durable queue, without the queue's lock held (the message is held
// meanwhile).
func (b *Broker) DeleteMessage(vhostName, queueName string, id uint64) error {
	q, err := b.lookupLocalQueue(vhostName, queueName) // metasync.go
	if err != nil {
		return err
	}
	e, err := q.holdReady(id, AnyVersion)
	if err != nil {
		return err
	}
	var batch store.Batch
	batch.DeleteMessage(q.id, id)
	if e.flags&entryState != 0 {
		batch.DeleteState(q.id, id)
	}
	if err := b.env.st.Apply(&batch, q.durable); err != nil {
		q.release(id, false, nil)
		return internalError("delete message", err)
	}
	q.release(id, true, nil)
	return nil
}

// PurgeQueue removes a queue's ready messages, as queue.purge, and
// returns how many.
func (b *Broker) PurgeQueue(vhostName, queueName string) (int, error) {
	q, err := b.lookupLocalQueue(vhostName, queueName) // metasync.go
	if err != nil {
		return 0, err
	}
	n, err := q.purgeAnywhere()
	return int(n), err
}
