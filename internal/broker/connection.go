package broker

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/sluicemq/sluice/internal/access"
)

// Connection is one client connection: the owner of its exclusive queues
// and its channels.
type Connection struct {
	vh     *vhost
	info   ConnInfo
	access *access.Checker // permissions.go; nil: unchecked (admin sessions)
	// impersonator: the user has the impersonator tag and may publish
	// with any user_id (senders.go). Read when the connection opens.
	impersonator bool
	// release gives back the connection's slot in the limits (limits.go);
	// limits admits its channels (nil: unchecked).
	release func()
	limits  *limitsDB

	// outputFull: the front door's output to this client is full; its
	// consumers get nothing until it drains (SetOutputFull).
	outputFull atomic.Bool

	mu        sync.Mutex
	channels  map[uint16]*Channel
	exclusive map[*queue]struct{}
	closed    bool

	// pubMu guards the publish progress: how many publishes were handed to
	// the write pipeline and how many of them reached their queues (in order).
	pubMu     sync.Mutex
	pubCond   sync.Cond
	pubIssued uint64
	pubDone   uint64

	// deaths: the dead letters this connection's settles started (a reject,
	// a requeue past the delivery limit) that have not reached their targets.
	deaths deadLetters
}

func newConnection(vh *vhost, info ConnInfo) *Connection {
	c := &Connection{vh: vh, info: info, channels: make(map[uint16]*Channel), exclusive: make(map[*queue]struct{})}
	c.pubCond.L = &c.pubMu
	c.deaths.cond.L = &c.deaths.mu
	return c
}

// Info returns the connection's description.
func (c *Connection) Info() ConnInfo { return c.info }

// Channel opens channel id of the connection. Deliveries and broker-sent
// cancellations go to out. Opening an id that is open replaces it (the old
// one is closed first).
func (c *Connection) Channel(id uint16, out Outlet) *Channel {
	return c.channel(id, out, nil)
}

// OpenChannel is Channel once the user's max-channels limit admits one
// more channel; over it, it fails with NotAllowed (limits.go).
func (c *Connection) OpenChannel(id uint16, out Outlet) (*Channel, error) {
	var release func()
	if c.limits != nil {
		var err error
		if release, err = c.limits.admitChannel(c.info.User); err != nil {
			return nil, err
		}
	}
	return c.channel(id, out, release), nil
}

func (c *Connection) channel(id uint16, out Outlet, release func()) *Channel {
	ch := newChannel(c, id, out)
	ch.release = release
	c.vh.env.objects.chanOpened.Add(1)
	c.mu.Lock()
	old := c.channels[id]
	c.channels[id] = ch
	c.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return ch
}

// SetOutputFull stops (true) or resumes (false) deliveries to every
// consumer of the connection: the front door calls it when the bytes it
// holds for the client pass its bound and when they drained. Meanwhile the
// messages stay ready in their queues and other consumers take them. It
// never blocks and may be called with the front door's locks held: the
// queues are dispatched again on a goroutine of their own.
func (c *Connection) SetOutputFull(full bool) {
	if c.outputFull.Swap(full) == full || full {
		return
	}
	go func() {
		c.mu.Lock()
		chans := make([]*Channel, 0, len(c.channels))
		for _, ch := range c.channels {
			chans = append(chans, ch)
		}
		c.mu.Unlock()
		for _, ch := range chans {
			ch.kick(nil)
		}
	}()
}

// Close closes every channel (returning their unacked messages to their
// queues) and deletes the connection's exclusive queues.
func (c *Connection) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.vh.env.objects.connClosed.Add(1)
	if c.release != nil {
		c.release()
	}
	chans := make([]*Channel, 0, len(c.channels))
	for _, ch := range c.channels {
		chans = append(chans, ch)
	}
	qs := make([]*queue, 0, len(c.exclusive))
	for q := range c.exclusive {
		qs = append(qs, q)
	}
	c.channels, c.exclusive = nil, nil
	c.mu.Unlock()
	for _, ch := range chans {
		ch.Close()
	}
	for _, q := range qs {
		c.vh.deleteQueueObject(q)
	}
}

// forgetChannel removes a closed channel from the map.
func (c *Connection) forgetChannel(ch *Channel) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.channels[ch.id] == ch {
		delete(c.channels, ch.id)
	}
}

// addExclusiveLocked records an exclusive queue; it reports false when the
// connection has closed (the queue must then go). Called with vhost.mu held.
func (c *Connection) addExclusive(q *queue) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.exclusive[q] = struct{}{}
	return true
}

func (c *Connection) forgetExclusive(q *queue) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.exclusive, q)
}

// publishStarted notes a publish handed to the write pipeline.
func (c *Connection) publishStarted() {
	c.pubMu.Lock()
	c.pubIssued++
	c.pubMu.Unlock()
}

// publishFinished notes that the oldest outstanding publish reached its
// queues (or failed).
func (c *Connection) publishFinished() {
	c.pubMu.Lock()
	c.pubDone++
	c.pubCond.Broadcast()
	c.pubMu.Unlock()
}

// waitPublished waits until every publish started before the call has
// reached its queues, and every dead letter of the connection's earlier
// settles has reached its targets (or was dropped).
func (c *Connection) waitPublished() {
	c.pubMu.Lock()
	target := c.pubIssued
	for c.pubDone < target {
		c.pubCond.Wait()
	}
	c.pubMu.Unlock()
	c.deaths.wait()
}

// deadLetters tracks dead letters in flight for a connection. They finish
// out of order (a move to a quorum queue led elsewhere waits for its
// leader), so it keeps the ids of those open rather than two counters.
type deadLetters struct {
	mu   sync.Mutex
	cond sync.Cond
	next uint64
	open []uint64 // ascending
}

// start notes a dead letter queued for the dead-letterer; the job calls
// the returned func once, when it is done.
func (d *deadLetters) start() func() {
	d.mu.Lock()
	id := d.next
	d.next++
	d.open = append(d.open, id)
	d.mu.Unlock()
	return func() { d.finish(id) }
}

func (d *deadLetters) finish(id uint64) {
	d.mu.Lock()
	if i, ok := slices.BinarySearch(d.open, id); ok {
		d.open = slices.Delete(d.open, i, i+1)
	}
	d.cond.Broadcast()
	d.mu.Unlock()
}

// wait waits until every dead letter started before the call is done.
func (d *deadLetters) wait() {
	d.mu.Lock()
	defer d.mu.Unlock()
	target := d.next
	for len(d.open) > 0 && d.open[0] < target {
		d.cond.Wait()
	}
}
