package broker

// The commit loop: two goroutines that turn the publishes of many channels
// into few store applies (group commit), then make the messages visible in
// their queues and tell each publisher.
//
// The applier gathers a group, assigns seqs and applies the group's batch;
// a synced batch is applied without waiting for its fsync (ApplyAsync), so
// the applier goes on gathering the next group while the store syncs this
// one, and the store folds the syncs of batches that queue up into one.
// The completer takes the applied groups in order, waits for each one's
// sync, enqueues its messages and calls the publishers' done. A queue thus
// sees its messages in seq order, and only once they are durable.

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicemq/sluice/internal/store"
)

const (
	// commitQueueLen bounds publishes waiting for the commit loop; a
	// publisher blocks when it is full (backpressure).
	commitQueueLen = 4096
	// maxGroup bounds the publishes applied as one batch.
	maxGroup = 1024
	// pipelineDepth bounds the applied groups waiting for their sync.
	pipelineDepth = 8
)

// appliedGroup is a group the applier has handed to the store.
type appliedGroup struct {
	reqs []*publishReq
	wait func() error // waits for the group's sync; nil when unsynced
	err  error        // the apply failed
}

// publishReq is one routed message on its way to its queues.
type publishReq struct {
	rec     []byte
	size    uint32 // body size
	flags   uint8  // entry flags (entryPersistent)
	targets []*queue
	sync    bool  // persistent and routed to a durable queue
	pubMs   int64 // publish time, unix ms
	ttl     int64 // the message's own expiration in ms, -1 for none
	prio    uint8 // the message's priority property
	full    error // set when a reject-publish queue refused the message
	// also holds operations applied atomically with the message (a
	// move's delete from its source, move.go); nil for a publish.
	also *store.Batch
	// keep: when a reject-publish queue refuses the message, it goes to
	// none of its targets and also is not applied (a redrive stays whole).
	keep bool
	// delayDue, when set, holds the message (rec is then a delayed-publish
	// record) in the delay queue until that unix ms.
	delayDue int64
	// dlx lists the reject-publish-dlx queues that refused the message:
	// it is dead-lettered from each (reason maxlen).
	dlx  []*queue
	done func(error)
	seqs []uint64 // assigned by the commit loop

	// Room for seqs and the index entry, sparing two allocations for the
	// usual message routed to one queue.
	seqRoom [1]uint64
	idxRoom [maxIndexLen]byte
}

// index returns the index entry the message's record gets in a durable
// queue (recovery rebuilds the queue from these). The store may keep it:
// it lives in r, written once.
func (r *publishReq) index() []byte {
	return appendIndex(r.idxRoom[:0], msgIndex{persistent: r.flags&entryPersistent != 0, size: r.size, pubMs: r.pubMs, ttl: r.ttl, prio: r.prio})
}

type committer struct {
	st   store.Store
	log  *slog.Logger
	reqs chan *publishReq
	wg   sync.WaitGroup

	// mu guards closed: senders hold it for reading while they send, so
	// close can tell when no one will send again.
	mu     sync.RWMutex
	closed bool

	// syncs and applies count store applies (for tests and metrics).
	syncs, applies atomic.Uint64

	// The delay queue: its id and next seq (owned by the loop), and the
	// scheduler told of each delayed publish.
	delayQID store.QueueID
	delaySeq uint64
	delays   *scheduler
	dead     *deadLetterer
}

func newCommitter(st store.Store, log *slog.Logger) *committer {
	return &committer{st: st, log: log, reqs: make(chan *publishReq, commitQueueLen)}
}

func (c *committer) start() {
	c.wg.Add(1)
	go c.run()
}

// submit hands r to the loop; it blocks while the loop is behind.
func (c *committer) submit(r *publishReq) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return errorf(ResourceError, "broker is shutting down")
	}
	c.reqs <- r
	return nil
}

// close stops accepting publishes and waits for the loop to commit what it
// has.
func (c *committer) close(ctx context.Context) error {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.reqs)
	}
	c.mu.Unlock()
	stopped := make(chan struct{})
	go func() { c.wg.Wait(); close(stopped) }()
	select {
	case <-stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *committer) run() {
	defer c.wg.Done()
	applied := make(chan appliedGroup, pipelineDepth)
	c.wg.Add(1)
	go c.complete(applied)
	defer close(applied)
	var batch store.Batch
	for r := range c.reqs {
		group := append(make([]*publishReq, 0, 16), r)
	drain:
		for len(group) < maxGroup {
			select {
			case r, ok := <-c.reqs:
				if !ok {
					break drain
				}
				group = append(group, r)
			default:
				break drain
			}
		}
		applied <- c.apply(group, &batch)
	}
}

// apply assigns the group's seqs and applies its batch, synced or not.
func (c *committer) apply(group []*publishReq, batch *store.Batch) appliedGroup {
	batch.Reset()
	sync := false
	var fill map[*queue]int
	for _, r := range group {
		if r.seqs == nil {
			r.seqs = r.seqRoom[:0]
		}
		r.seqs = r.seqs[:0]
		if rejectsAny(r.targets) {
			fill = c.refuseFull(r, fill)
			if r.full != nil && r.keep {
				r.targets = nil
			}
		}
		if r.delayDue != 0 {
			r.seqs = append(r.seqs, c.delaySeq)
			batch.PutMessage(c.delayQID, c.delaySeq, r.rec)
			batch.PutDelay(r.delayDue, c.delayQID, c.delaySeq)
			c.delaySeq++
		}
		var idx []byte
		for _, q := range r.targets {
			seq := q.nextSeq
			q.nextSeq++
			r.seqs = append(r.seqs, seq)
			if !q.durable {
				batch.PutMessage(q.id, seq, r.rec) // dropped by the next Open
				continue
			}
			if idx == nil {
				idx = r.index()
			}
			batch.PutIndexed(q.id, seq, r.rec, idx)
		}
		if r.also != nil && !(r.keep && r.full != nil) {
			batch.Append(r.also)
		}
		sync = sync || r.sync
	}
	for _, r := range group {
		for _, q := range r.targets {
			q.inflight.Add(1)
		}
	}
	g := appliedGroup{reqs: group}
	if sync {
		g.wait, g.err = c.st.ApplyAsync(batch)
		c.syncs.Add(1)
	} else {
		g.err = c.st.Apply(batch, false)
	}
	c.applies.Add(1)
	batch.Reset()
	return g
}

// complete finishes the applied groups in order: waits for each one's
// sync, enqueues its messages and tells its publishers.
func (c *committer) complete(applied <-chan appliedGroup) {
	defer c.wg.Done()
	byQ := make(map[*queue][]entry)
	for g := range applied {
		err := g.err
		if err == nil && g.wait != nil {
			err = g.wait()
		}
		if err != nil {
			// The publishers are nacked; a store failure fenced the
			// broker and was logged once (fence.go).
			if !isFence(err) {
				c.log.Error("commit messages", "messages", len(g.reqs), "err", err)
			}
		} else {
			c.enqueue(g.reqs, byQ)
		}
		for _, r := range g.reqs {
			for _, q := range r.targets {
				q.inflight.Add(-1)
			}
			if r.done != nil {
				switch {
				case err != nil:
					r.done(err)
				default:
					r.done(r.full)
				}
			}
		}
	}
}

// enqueue makes a durable group's messages visible: delayed ones to the
// delay scheduler, refused reject-publish-dlx ones to the dead-letterer,
// the rest to their queues.
func (c *committer) enqueue(group []*publishReq, byQ map[*queue][]entry) {
	for _, r := range group {
		if r.delayDue != 0 && c.delays != nil {
			c.delays.add(delayItem{due: r.delayDue, q: c.delayQID, seq: r.seqs[0]})
			continue
		}
		for _, q := range r.dlx {
			if c.dead != nil {
				c.dead.add(deadJob{src: q, rec: r.rec, reason: reasonMaxLen, at: time.UnixMilli(r.pubMs)})
			}
		}
		for i, q := range r.targets {
			e := entry{seq: r.seqs[i], size: r.size, flags: r.flags, expires: expiry(r.pubMs, r.ttl, q.opts().MessageTTL),
				priority: q.priorityLevel(r.prio)}
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
func (c *committer) refuseFull(r *publishReq, fill map[*queue]int) map[*queue]int {
	if fill == nil {
		fill = make(map[*queue]int)
	}
	kept := r.targets[:0]
	for _, q := range r.targets {
		// Messages of earlier groups still on their way count too.
		if q.rejectsPublish() && q.full(fill[q]+int(q.inflight.Load()), r.size) {
			r.full = errorf(ResourceError, "queue '%s' in vhost '%s' is full", q.name, q.vh.name)
			if q.opts().Overflow == "reject-publish-dlx" && q.opts().HasDeadLetter {
				r.dlx = append(r.dlx, q)
			}
			continue
		}
		fill[q]++
		kept = append(kept, q)
	}
	r.targets = kept
	return fill
}
