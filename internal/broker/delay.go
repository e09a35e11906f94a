package broker

// Delays: messages published with x-delay (or through an x-delayed-message
// exchange) and returned messages waiting out x-retry-backoff.
//
// Every wait is an entry (due, queue, seq) of the store's delay index. A
// delayed publish is stored, before routing, in the broker's hidden delay
// queue (its own queue id): when it is due the scheduler routes it through
// its exchange as it is then and moves it (move.go) into the queues it
// reaches: one batch puts it in the targets and deletes it from the delay
// queue and the index, so after a crash it is in exactly one place. A retry wait
// keeps the message in its queue; when due it is ready again.
//
// The scheduler keeps only a window of the earliest entries in memory
// (delayWindow); entries beyond the window's horizon live only in the
// store and are read back with ScanDelays when the window runs dry. So a
// million pending delays cost disk, not memory. One timer, set for the
// earliest entry, wakes the scheduler's goroutine.

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/records"
	"github.com/sluicemq/sluice/internal/store"
)

// delayWindow bounds the delay-index entries held in memory.
const delayWindow = 16384

// delayItem is one delay-index entry.
type delayItem struct {
	due int64
	q   store.QueueID
	seq uint64
}

func compareDelay(a, b delayItem) int {
	if c := cmp.Compare(a.due, b.due); c != 0 {
		return c
	}
	if c := cmp.Compare(a.q, b.q); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

// scheduler releases delay-index entries when they are due.
type scheduler struct {
	b      *Broker
	window int
	wake   chan struct{}
	stop   chan struct{}
	wg     sync.WaitGroup

	// releasing serialises releases: whoever takes a batch from next
	// releases all of it before anyone takes the next one, so the moves
	// reach the write pipeline in due order. Without it releaseDue (a
	// fake clock's tick) and run, woken by a late poke, interleave their
	// batches.
	releasing sync.Mutex

	mu sync.Mutex
	// items is the window, sorted; items[head:] are pending.
	items []delayItem
	head  int
	// overflow: the store may hold entries above horizon that are not in
	// items (every entry at or below horizon is in items or released).
	overflow bool
	horizon  delayItem
	released uint64 // entries released (for tests and metrics)
}

func newScheduler(b *Broker, window int) *scheduler {
	return &scheduler{b: b, window: window, wake: make(chan struct{}, 1), stop: make(chan struct{}),
		overflow: true, horizon: delayItem{due: -1 << 63}}
}

func (s *scheduler) start() {
	s.wg.Add(1)
	go s.run()
}

func (s *scheduler) close() {
	close(s.stop)
	s.wg.Wait()
}

// add registers an entry whose index record is already applied.
func (s *scheduler) add(it delayItem) {
	s.mu.Lock()
	if s.overflow && compareDelay(it, s.horizon) > 0 {
		s.mu.Unlock() // beyond the window: read back from the store later
		return
	}
	pending := s.items[s.head:]
	i, found := slices.BinarySearchFunc(pending, it, compareDelay)
	if found {
		s.mu.Unlock()
		return
	}
	s.items = slices.Insert(s.items, s.head+i, it)
	if n := len(s.items) - s.head; n > s.window {
		s.items = s.items[:len(s.items)-1]
		s.overflow = true
		s.horizon = s.items[len(s.items)-1]
	}
	first := i == 0
	s.mu.Unlock()
	if first {
		s.poke()
	}
}

func (s *scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// pendingLen returns the entries in the window (for tests).
func (s *scheduler) pendingLen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items) - s.head
}

// refillLocked reads the next entries above the horizon from the store.
func (s *scheduler) refillLocked() {
	s.items, s.head = s.items[:0], 0
	var got []delayItem
	err := s.b.env.st.ScanDelays(s.horizon.due, func(due int64, q store.QueueID, seq uint64) bool {
		it := delayItem{due: due, q: q, seq: seq}
		if compareDelay(it, s.horizon) <= 0 {
			return true
		}
		got = append(got, it)
		return len(got) < s.window
	})
	if err != nil {
		s.b.env.log.Error("read the delay index", "err", err)
		return
	}
	s.items = append(s.items, got...)
	if len(got) < s.window {
		s.overflow = false
	} else {
		s.horizon = got[len(got)-1]
	}
}

// next returns the entries due now, and the time of the next one.
func (s *scheduler) next(now int64) (due []delayItem, wait time.Duration, any bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.head == len(s.items) && s.overflow {
		s.refillLocked()
	}
	for s.head < len(s.items) && s.items[s.head].due <= now && len(due) < 1024 {
		due = append(due, s.items[s.head])
		s.head++
	}
	if s.head == len(s.items) {
		s.items, s.head = s.items[:0], 0
	} else if s.head > 4096 && s.head*2 > len(s.items) {
		n := copy(s.items, s.items[s.head:])
		s.items, s.head = s.items[:n], 0
	}
	if len(due) > 0 {
		return due, 0, true
	}
	if s.head < len(s.items) {
		return nil, time.Duration(s.items[s.head].due-now) * time.Millisecond, true
	}
	if s.overflow {
		return nil, time.Second, true // the store failed to answer: retry later
	}
	return nil, 0, false
}

func (s *scheduler) run() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		released, wait, any := s.releaseBatch()
		if released {
			continue
		}
		if !sleep(timer, wait, any, s.stop, s.wake) {
			return
		}
	}
}

// releaseDue releases every entry due at now (tests with a fake clock).
func (s *scheduler) releaseDue() {
	for {
		if released, _, _ := s.releaseBatch(); !released {
			return
		}
	}
}

// releaseBatch releases the next batch of due entries, if any, and else
// returns how long to wait, as next.
func (s *scheduler) releaseBatch() (released bool, wait time.Duration, any bool) {
	s.releasing.Lock()
	defer s.releasing.Unlock()
	due, wait, any := s.next(s.b.env.now().UnixMilli())
	for _, it := range due {
		s.release(it)
	}
	return len(due) > 0, wait, any
}

func (s *scheduler) release(it delayItem) {
	s.mu.Lock()
	s.released++
	s.mu.Unlock()
	if it.q == s.b.delayQID {
		s.b.releaseDelayedPublish(it)
		return
	}
	if q := s.b.queueByID(it.q); q != nil {
		q.releaseRetry(it.seq, it.due)
		return
	}
	var b store.Batch
	b.DeleteDelay(it.due, it.q, it.seq)
	if err := s.b.env.st.Apply(&b, false); err != nil && !isFence(err) {
		s.b.env.log.Error("drop a stale delay entry", "err", err)
	}
}

// queueByID finds a live queue by its store id.
func (b *Broker) queueByID(id store.QueueID) *queue {
	for _, vh := range b.vhostList() {
		vh.mu.RLock()
		for _, q := range vh.queues {
			if q.id == id {
				vh.mu.RUnlock()
				return q
			}
		}
		vh.mu.RUnlock()
	}
	return nil
}

// publishDelay returns the x-delay of msg in ms (0 for none): an integer
// header; zero or negative means no delay, as the delayed-message plugin.
func publishDelay(msg *message.Message) int64 {
	v, ok := msg.Properties.Headers["x-delay"]
	if !ok {
		return 0
	}
	n, ok := intValue(v)
	if !ok || n <= 0 {
		return 0
	}
	return n
}

// publishDelayed stores msg in the delay queue until due; admitDelayed
// has checked its exchange.
func (ch *Channel) publishDelayed(msg *message.Message, delay int64, done func(error)) error {
	vh := ch.vh
	now := ch.env.now()
	req, err := newPublishReq(msg, nil, done, now)
	if err != nil {
		return err
	}
	req.rec = records.EncodeDelayed(vh.name, req.rec)
	req.delayDue = now.UnixMilli() + delay
	req.sync = msg.Persistent()
	ch.mu.Lock()
	if ch.mode == modeTx {
		ch.holdLocked(req, msg, false, nil)
		ch.mu.Unlock()
		return nil
	}
	ch.mu.Unlock()
	return ch.submit(req)
}

// releaseDelayedPublish routes a due delayed message and moves it into its
// queues; one that reaches none (or whose exchange is gone) is dropped.
func (b *Broker) releaseDelayedPublish(it delayItem) {
	var gone store.Batch
	gone.DeleteMessage(b.delayQID, it.seq)
	gone.DeleteDelay(it.due, b.delayQID, it.seq)
	v, err := b.env.st.Get(b.delayQID, it.seq)
	if err != nil {
		b.env.log.Warn("delayed message missing; dropping its entry", "seq", it.seq, "err", err)
		b.applyOrLog(&gone, "drop a delayed message")
		return
	}
	vhName, rec, err := records.DecodeDelayed(v)
	var m *message.Message
	if err == nil {
		m, err = records.DecodeRecord(rec)
	}
	vh := b.vhost(vhName)
	if err != nil || vh == nil {
		b.env.log.Warn("unreadable delayed message; dropping it", "seq", it.seq, "err", err)
		b.applyOrLog(&gone, "drop a delayed message")
		return
	}
	vh.mu.RLock()
	var targets []*queue
	if x := vh.exchanges[m.Exchange]; x != nil {
		targets = vh.routeLocked(x, m)
	}
	vh.mu.RUnlock()
	if len(targets) == 0 {
		b.applyOrLog(&gone, "drop an unroutable delayed message")
		return
	}
	stripBCC(m)
	b.env.move(&moveReq{msg: m, targets: targets, also: &gone, sync: m.Persistent(), done: func(err error) {
		switch {
		case err == nil:
		case CodeOf(err) == InvalidArgument: // it cannot be stored again: it never will
			b.env.log.Warn("re-encode delayed message; dropping it", "seq", it.seq, "err", err)
			b.applyOrLog(&gone, "drop a delayed message")
		default: // a store failure: it stays, and is released again after a restart
			b.env.log.Warn("release delayed message", "seq", it.seq, "err", err)
		}
	}})
}

func (b *Broker) applyOrLog(batch *store.Batch, op string) {
	if err := b.env.st.Apply(batch, false); err != nil && !isFence(err) {
		b.env.log.Error(op, "err", err)
	}
}
