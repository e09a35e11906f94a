package broker

// Housekeeping: the broker's timer loop. It drops expired messages that no
// consumer reaches (message TTL is otherwise checked when a message reaches
// the head of its queue), takes back deliveries past x-consumer-timeout,
// deletes queues unused for longer than their x-expires and sweeps shared
// bodies no queue refers to (shared.go).

import (
	"errors"
	"time"

	"github.com/sluicemq/sluice/internal/store"
)

// housekeepEvery is how often the housekeeping loop runs.
const housekeepEvery = time.Second

func (b *Broker) runHousekeeping() {
	defer b.wg.Done()
	t := time.NewTicker(housekeepEvery)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.housekeep()
		}
	}
}

// housekeep does one round; tests call it directly.
func (b *Broker) housekeep() {
	b.users.failures.Flush() // users.go: the failed logins gathered per source
	if err := b.sharing.sweepRound(); err != nil && !isFence(err) && !errors.Is(err, store.ErrFenced) && !errors.Is(err, store.ErrClosed) {
		b.cfg.Logger.Error("sweep shared bodies", "err", err)
	}
	for _, vh := range b.vhostList() {
		vh.mu.RLock()
		qs := make([]*queue, 0, len(vh.queues))
		for _, q := range vh.queues {
			qs = append(qs, q)
		}
		vh.mu.RUnlock()
		for _, q := range qs {
			if q.housekeep() {
				vh.expireQueue(q)
			}
		}
	}
}

// housekeep drops expired head messages and reports whether the queue has
// been unused for longer than its x-expires.
func (q *queue) housekeep() (expired bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted || q.home != "" {
		// A queue of another node is kept (and expired) there.
		return false
	}
	q.dropExpiredLocked()
	q.timeOutLocked()
	return q.idleExpiredLocked()
}

func (q *queue) idleExpiredLocked() bool {
	return q.opts().Expires > 0 && len(q.consumers) == 0 &&
		q.env.now().UnixMilli()-q.lastUsed > q.opts().Expires
}

// touchLocked notes a use of the queue for x-expires.
func (q *queue) touchLocked() { q.lastUsed = q.env.now().UnixMilli() }

func (q *queue) touch() {
	q.mu.Lock()
	q.touchLocked()
	q.mu.Unlock()
}

// expireQueue deletes a queue whose x-expires passed, re-checking under
// the locks.
func (vh *vhost) expireQueue(q *queue) {
	vh.mu.Lock()
	deleted := false
	if vh.queues[q.name] == q {
		q.mu.Lock()
		idle := q.idleExpiredLocked()
		q.mu.Unlock()
		if idle {
			_, deleted = vh.deleteQueueLocked(q, true)
		}
	}
	vh.mu.Unlock()
	if deleted && q.durable {
		_ = vh.env.syncDefs()
	}
}
