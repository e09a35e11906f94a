package pebblestore

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/sluicemq/sluice/internal/store"
)

// compactor compacts the fully acked range of queues that have drained, so
// their tombstones and disk space go away. Apply notifies it of queues whose
// floor moved or that were dropped; its one goroutine is started by Open and
// stopped (and waited for) by Close.
type compactor struct {
	s      *Store
	ctx    context.Context
	cancel context.CancelFunc
	wake   chan struct{} // capacity 1: a pending wake-up
	done   sync.WaitGroup

	// mu guards pending, the queues to look at.
	mu      sync.Mutex
	pending map[store.QueueID]struct{}

	// compacted is the floor at each queue's last compaction; owned by the
	// goroutine.
	compacted map[store.QueueID]uint64
}

func startCompactor(s *Store) *compactor {
	ctx, cancel := context.WithCancel(context.Background())
	c := &compactor{
		s: s, ctx: ctx, cancel: cancel,
		wake:      make(chan struct{}, 1),
		pending:   make(map[store.QueueID]struct{}),
		compacted: make(map[store.QueueID]uint64),
	}
	c.done.Go(c.run)
	return c
}

// notify queues q for a look; it never blocks.
func (c *compactor) notify(q store.QueueID) {
	c.mu.Lock()
	c.pending[q] = struct{}{}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// stop cancels a running compaction and waits for the goroutine.
func (c *compactor) stop() {
	c.cancel()
	c.done.Wait()
}

// compactorPause is the least time between two looks at the same pending
// set. A draining queue moves its floor with every batch of acks, and
// looking means seeking an iterator past the floor: without the pause that
// seek cost about a tenth of a consumer's broker CPU. The notifications
// of a pause are coalesced; a drained queue is still found within it.
const compactorPause = 100 * time.Millisecond

func (c *compactor) run() {
	pause := time.NewTimer(0)
	defer pause.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.wake:
		}
		c.mu.Lock()
		pending := c.pending
		c.pending = make(map[store.QueueID]struct{})
		c.mu.Unlock()
		for q := range pending {
			if c.ctx.Err() != nil {
				return
			}
			c.maybeCompact(q)
		}
		pause.Reset(compactorPause)
		select {
		case <-c.ctx.Done():
			return
		case <-pause.C:
		}
	}
}

// maybeCompact compacts q's acked range [0, floor) of messages, index
// entries and states if
// q holds no message at or above its floor and the floor moved at least
// CompactEvery since q's last compaction. A dropped queue (floor 0, no
// messages) is compacted whole.
func (c *compactor) maybeCompact(q store.QueueID) {
	s := c.s
	if s.enterWrite() != nil {
		return
	}
	defer s.exit()
	floor, err := s.Floor(q)
	if err != nil {
		s.log.Warn("compactor: read floor", "queue", q, "err", err)
		return
	}
	empty := true
	err = s.scanRecords("compactor: look for messages", q, floor, func(uint64, []byte) bool {
		empty = false
		return false
	})
	if err != nil {
		s.log.Warn("compactor: scan", "queue", q, "err", err)
		return
	}
	if !empty {
		return
	}
	if err := s.clearAcked(q); err != nil {
		s.log.Warn("compactor: clear acked prefix", "queue", q, "err", err)
		return
	}
	end := floor
	if floor == 0 {
		end = ^uint64(0) // dropped: the whole queue
	} else if prev := c.compacted[q]; floor <= prev || floor-prev < s.opts.CompactEvery {
		return
	}
	msgEnd := msgQueueEnd(q)
	if end != ^uint64(0) {
		msgEnd = msgSeqStart(q, end)
	}
	ranges := [][2][]byte{
		{msgQueueStart(q), msgEnd},
		{queueKey(prefixState, q, 0), queueKey(prefixState, q, end)},
	}
	for _, r := range ranges {
		if bytes.Compare(r[0], r[1]) >= 0 {
			continue
		}
		if err := s.db.Compact(c.ctx, r[0], r[1], false); err != nil {
			if c.ctx.Err() == nil {
				s.log.Warn("compactor: compact", "queue", q, "err", err)
			}
			return
		}
	}
	c.compacted[q] = floor
	s.compactions.Add(1)
	s.log.Debug("compacted drained queue", "queue", q, "floor", floor)
}
