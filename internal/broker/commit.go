package broker

// Publishing through the write pipeline. The store's Pipeline (store
// package) owns ordering, grouping and the wait for fsync; this file is
// what it asks of the broker: how a group of routed messages becomes store
// operations (prepare, on the pipeline's goroutine, which therefore owns
// every queue's nextSeq) and what completing them means (complete, on its
// completion goroutine, in submit order, once the group is durable).
//
// Completion only makes messages visible: it adds their entries to their
// queues' indexes and wakes the queues (queue.enqueue); dispatch, body
// reads and deliveries happen on the queue's dispatcher (ready.go) or a
// consumer's channel, never here, so a slow queue or a cold read does not
// hold back another publisher's confirm.

import (
	"errors"
	"log/slog"
	"time"

	"github.com/sluicemq/sluice/internal/records"
	"github.com/sluicemq/sluice/internal/store"
)

// publishReq is one routed message on its way to its queues: what the
// publisher hands the pipeline, and (placed) what the pipeline decided.
type publishReq struct {
	rec     []byte
	meta    records.Index // what the message's index entry says of it
	targets []*queue
	sync    bool // persistent and routed to a durable queue
	// also holds operations applied atomically with the message (a move's
	// delete from its source, move.go); nil for a publish.
	also *store.Batch
	// keep: when a reject-publish queue refuses the message, it goes to
	// none of its targets and also is not applied (a redrive stays whole).
	keep bool
	// delayDue, when set, holds the message (rec is then a delayed-publish
	// record) in the delay queue until that unix ms.
	delayDue int64
	done     func(error)
	placed   placement
}

// placement is what prepare decided for a publishReq; only the pipeline
// writes it.
type placement struct {
	seqs []uint64 // one per target (the delay queue's, for a delayed one)
	full error    // set when a reject-publish queue refused the message
	// dlx lists the reject-publish-dlx queues that refused the message:
	// it is dead-lettered from each (reason maxlen).
	dlx []*queue
	// Room for seqs and the index entry, sparing two allocations for the
	// usual message routed to one queue.
	seqRoom [1]uint64
	idxRoom [records.MaxIndexLen]byte
}

// flags returns the entry flags the message starts with.
func (r *publishReq) flags() uint8 {
	if r.meta.Persistent {
		return entryPersistent
	}
	return 0
}

// index returns the index entry the message's record gets in a durable
// queue (recovery rebuilds the queue from these). The store may keep it:
// it lives in r, written once.
func (r *publishReq) index() []byte {
	return records.AppendIndex(r.placed.idxRoom[:0], r.meta)
}

// publishing is the broker's side of the write pipeline: the delay queue
// (its id and next seq, owned by prepare) and where completion hands
// delayed and refused messages.
type publishing struct {
	log      *slog.Logger
	delayQID store.QueueID
	delaySeq uint64
	delays   *scheduler
	dead     *deadLetterer
	byQ      map[*queue][]entry // complete's scratch
	sharing  *bodySharing       // shared.go: set by Open before the pipeline starts
}

// newPipeline returns the broker's write pipeline over st, not started.
func newPipeline(st store.Store, p *publishing) *store.LocalPipeline[*publishReq] {
	p.byQ = make(map[*queue][]entry)
	return store.NewPipeline(store.PipelineEnv[*publishReq]{
		Store: st, Prepare: p.prepare, Complete: p.complete, Logger: p.log,
		// The fence's error is for good: what it kept from the store is
		// dropped, not kept for a next write that will not come.
		// A metadata write the cluster did not commit is not kept either:
		// the broker reloads its keys (metasync.go), and a late commit
		// reaches it as another node's write would.
		Permanent: func(err error) bool { return isFence(err) || errors.Is(err, store.ErrNotCommitted) },
		// Bytes in flight are bounded, not only messages: a publisher
		// without confirms is held in Submit (its socket then is not
		// read) while the store writes what it sent.
		Size: (*publishReq).size,
	})
}

// size is the bytes r's writes carry: its record once per queue (the
// delay queue's included) and what is applied with it.
func (r *publishReq) size() int64 {
	copies := len(r.targets)
	if r.delayDue != 0 {
		copies++
	}
	n := int64(len(r.rec)) * int64(max(1, copies))
	if r.also != nil {
		n += r.also.Bytes()
	}
	return n
}

// submit hands r to the pipeline; it blocks while the pipeline is behind.
func (e *env) submit(r *publishReq) error {
	err := e.pipe.Submit(r)
	if errors.Is(err, store.ErrClosed) {
		return errorf(ResourceError, "broker is shutting down")
	}
	return err
}

// prepare assigns the group's seqs and adds its writes to b; it reports
// whether b must be synced.
func (p *publishing) prepare(group []*publishReq, b *store.Batch) bool {
	sync := false
	var fill map[*queue]int
	for _, r := range group {
		pl := &r.placed
		if pl.seqs == nil {
			pl.seqs = pl.seqRoom[:0]
		}
		pl.seqs = pl.seqs[:0]
		if rejectsAny(r.targets) {
			fill = refuseFull(r, fill)
			if pl.full != nil && r.keep {
				r.targets = nil
			}
		}
		if r.delayDue != 0 {
			pl.seqs = append(pl.seqs, p.delaySeq)
			b.PutMessage(p.delayQID, p.delaySeq, r.rec)
			b.PutDelay(r.delayDue, p.delayQID, p.delaySeq)
			p.delaySeq++
		}
		var idx []byte
		// A message for two or more durable queues keeps its body once
		// (shared.go); the others are written whole.
		durableRec, body, bodyID, shared := r.rec, []byte(nil), uint64(0), false
		var refs []store.BodyRef
		if p.sharing.shares(r.targets) {
			durableRec, body, bodyID, shared = p.sharing.split(r.rec)
			if !shared {
				durableRec = r.rec
			}
		}
		for _, q := range r.targets {
			seq := q.nextSeq
			q.nextSeq++
			pl.seqs = append(pl.seqs, seq)
			if !q.durable {
				b.PutMessage(q.id, seq, r.rec) // dropped by the next Open
				continue
			}
			if idx == nil {
				idx = r.index()
			}
			b.PutIndexed(q.id, seq, durableRec, idx)
			if shared {
				refs = append(refs, store.BodyRef{Queue: q.id, Seq: seq})
			}
		}
		if shared {
			b.PutBody(bodyID, body, refs)
		}
		if r.also != nil && !(r.keep && pl.full != nil) {
			b.Append(r.also)
		}
		sync = sync || r.sync
	}
	// Counted after the group: refuseFull counts this group's own (fill).
	for _, r := range group {
		for _, q := range r.targets {
			q.inflight.Add(1)
		}
	}
	return sync
}

// complete finishes a group in order: enqueues its messages and tells its
// publishers.
func (p *publishing) complete(group []*publishReq, err error) {
	if err != nil {
		// The publishers are nacked; a store failure fenced the broker
		// and was logged once (fence.go).
		if !isFence(err) {
			p.log.Error("commit messages", "messages", len(group), "err", err)
		}
	} else {
		p.enqueue(group)
	}
	for _, r := range group {
		for _, q := range r.targets {
			q.inflight.Add(-1)
		}
		if r.done != nil {
			switch {
			case err != nil:
				r.done(err)
			default:
				r.done(r.placed.full)
			}
		}
	}
}

// enqueue makes a durable group's messages visible: delayed ones to the
// delay scheduler, refused reject-publish-dlx ones to the dead-letterer,
// the rest to their queues.
func (p *publishing) enqueue(group []*publishReq) {
	byQ := p.byQ
	for _, r := range group {
		if r.delayDue != 0 && p.delays != nil {
			p.delays.add(delayItem{due: r.delayDue, q: p.delayQID, seq: r.placed.seqs[0]})
			continue
		}
		for _, q := range r.placed.dlx {
			if p.dead != nil {
				p.dead.add(deadJob{src: q, rec: r.rec, reason: reasonMaxLen, at: time.UnixMilli(r.meta.PubMs)})
			}
		}
		m := &r.meta
		for i, q := range r.targets {
			e := entry{seq: r.placed.seqs[i], size: m.Size, flags: r.flags(), expires: expiry(m.PubMs, m.TTL, q.opts().MessageTTL),
				priority: q.priorityLevel(m.Prio)}
			if q.env.cache.put(cacheKey{q.id, e.seq}, r.rec) {
				e.flags |= entryCached
			}
			byQ[q] = append(byQ[q], e)
		}
	}
	for q, es := range byQ {
		q.enqueue(es)
		delete(byQ, q)
	}
}

// expiry returns when a message published at pubMs dies in a queue with
// queueTTL (both TTLs in ms, -1 for none; the shorter wins), 0 for never.
func expiry(pubMs, msgTTL, queueTTL int64) int64 {
	ttl := msgTTL
	if queueTTL >= 0 && (ttl < 0 || queueTTL < ttl) {
		ttl = queueTTL
	}
	if ttl < 0 {
		return 0
	}
	return pubMs + ttl
}

func rejectsAny(qs []*queue) bool {
	for _, q := range qs {
		if q.rejectsPublish() {
			return true
		}
	}
	return false
}

// refuseFull drops from r's targets the reject-publish queues that are
// full, counting what this group already added (fill); the publisher then
// hears of it (basic.nack) even if other queues took the message.
func refuseFull(r *publishReq, fill map[*queue]int) map[*queue]int {
	if fill == nil {
		fill = make(map[*queue]int)
	}
	kept := r.targets[:0]
	for _, q := range r.targets {
		// Messages of earlier groups still on their way count too.
		if q.rejectsPublish() && q.full(fill[q]+int(q.inflight.Load()), r.meta.Size) {
			r.placed.full = errorf(ResourceError, "queue '%s' in vhost '%s' is full", q.name, q.vh.name)
			if q.opts().Overflow == "reject-publish-dlx" && q.opts().HasDeadLetter {
				r.placed.dlx = append(r.placed.dlx, q)
			}
			continue
		}
		fill[q]++
		kept = append(kept, q)
	}
	r.targets = kept
	return fill
}
