package broker

// Prompt expiry: a message whose TTL has passed leaves its queue (expired,
// dead-lettered when the queue says so) as soon as it is due and at the
// head, whether or not anyone reads the queue, as RabbitMQ's per-queue TTL
// timer does.
//
// Each queue remembers the due time it has asked to be woken at
// (queue.expArmed). Whenever its head may have changed (enqueue, a
// dispatch round, a get, a drop) it compares the head's due time with
// that and asks again only when the head is due earlier — so a queue
// whose head keeps moving on (consumed, due later) costs one comparison,
// and the one wake-up at the old time re-arms for the new head. One
// goroutine, the expirer, owns a heap of (due, queue) and one timer set
// for the earliest; it calls the queue after releasing its own mutex.

import (
	"sync"
	"time"
)

// dueWake asks the expirer to wake q at due (unix ms).
type dueWake struct {
	due int64
	q   *queue
}

// expirer wakes queues whose head message is due.
type expirer struct {
	now  func() time.Time
	wake chan struct{}
	stop chan struct{}
	wg   sync.WaitGroup

	mu    sync.Mutex // a leaf, taken under queue.mu
	items []dueWake  // a min-heap by due
}

func startExpirer(now func() time.Time) *expirer {
	x := &expirer{now: now, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	x.wg.Add(1)
	go x.run()
	return x
}

func (x *expirer) close() {
	close(x.stop)
	x.wg.Wait()
}

// add asks for q to be woken at due. It never blocks (callers hold
// queue.mu).
func (x *expirer) add(due int64, q *queue) {
	x.mu.Lock()
	x.push(dueWake{due: due, q: q})
	first := x.items[0].q == q && x.items[0].due == due
	x.mu.Unlock()
	if first {
		select {
		case x.wake <- struct{}{}:
		default:
		}
	}
}

// next pops the wakes due at now, and says how long until the next one.
func (x *expirer) next(now int64) (due []dueWake, wait time.Duration, any bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for len(x.items) > 0 && x.items[0].due <= now && len(due) < 1024 {
		due = append(due, x.pop())
	}
	if len(due) > 0 {
		return due, 0, true
	}
	if len(x.items) == 0 {
		return nil, 0, false
	}
	return nil, time.Duration(x.items[0].due-now) * time.Millisecond, true
}

func (x *expirer) run() {
	defer x.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		due, wait, any := x.next(x.now().UnixMilli())
		if len(due) > 0 {
			for _, w := range due {
				w.q.expireDue(w.due)
			}
			continue
		}
		if !sleep(timer, wait, any, x.stop, x.wake) {
			return
		}
	}
}

// sleep waits until wait has passed (only when any), wake is signalled or
// stop is closed, and reports false for stop. The scheduler and the
// expirer share it.
func sleep(timer *time.Timer, wait time.Duration, any bool, stop, wake <-chan struct{}) bool {
	var tc <-chan time.Time
	if any {
		timer.Reset(max(wait, 0))
		tc = timer.C
	}
	select {
	case <-stop:
		return false
	case <-wake:
	case <-tc:
	}
	return true
}

func (x *expirer) push(w dueWake) {
	x.items = append(x.items, w)
	for i := len(x.items) - 1; i > 0; {
		p := (i - 1) / 2
		if x.items[p].due <= x.items[i].due {
			break
		}
		x.items[p], x.items[i] = x.items[i], x.items[p]
		i = p
	}
}

func (x *expirer) pop() dueWake {
	top := x.items[0]
	last := len(x.items) - 1
	x.items[0] = x.items[last]
	x.items[last] = dueWake{}
	x.items = x.items[:last]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < last && x.items[l].due < x.items[m].due {
			m = l
		}
		if l+1 < last && x.items[l+1].due < x.items[m].due {
			m = l + 1
		}
		if m == i {
			return top
		}
		x.items[i], x.items[m] = x.items[m], x.items[i]
		i = m
	}
}

// armExpiryLocked makes sure the expirer wakes the queue when its head
// is due: it asks only when no wake is pending at or before that time.
func (q *queue) armExpiryLocked() {
	e, ok := q.ready.peek()
	if !ok || e.expires == 0 || q.env.expiry == nil {
		return
	}
	if q.expArmed != 0 && q.expArmed <= e.expires {
		return
	}
	q.expArmed = e.expires
	q.env.expiry.add(e.expires, q)
}

// expireDue is the expirer's wake-up at due: it drops the expired head
// messages and re-arms for the new head.
func (q *queue) expireDue(due int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.expArmed == due {
		q.expArmed = 0
	}
	if q.deleted {
		return
	}
	q.dropExpiredLocked()
}

// armAll arms every queue's head (after recovery, which runs before the
// expirer starts).
func (b *Broker) armAll() {
	for _, vh := range b.vhostList() {
		vh.mu.RLock()
		for _, q := range vh.queues {
			q.mu.Lock()
			q.armExpiryLocked()
			q.mu.Unlock()
		}
		vh.mu.RUnlock()
	}
}
