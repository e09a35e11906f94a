package amqpserver

import (
	"sync"

	"github.com/sluicemq/sluice/internal/amqp"
)

// confirms numbers a confirm-mode channel's publishes (from 1) and sends
// basic.ack / basic.nack for them. A publish is ready to confirm once the
// broker took it (stored, from any goroutine) and the reader released it
// (after it queued any basic.return, which must reach the client first).
//
// Confirms are computed when the writer reaches a flush item, not when a
// publish becomes ready, so the confirms of a burst (a group commit) go out
// as one multiple=true frame for the contiguous run from the lowest
// unconfirmed number; ready publishes beyond a gap go out one by one. A
// publish that had a basic.return is confirmed only by a flush item queued
// after its return.
type confirms struct {
	wr      *writer
	channel uint16
	// sent, when set, is told how many publishes each flush acked and
	// nacked (for the broker's confirm counters).
	sent func(acks, nacks int)

	// mu guards the fields below.
	mu      sync.Mutex
	closed  bool
	last    uint64 // last number handed out
	low     uint64 // every number below low was confirmed
	pending map[uint64]*pendingConfirm
	flushes uint64 // flush items queued so far; the latest has this id
	queued  bool   // flush item `flushes` is queued and not yet run
	beyond  int    // ready publishes not yet confirmed, besides the low run
}

type pendingConfirm struct {
	stored, released, sent bool
	nack                   bool
	minFlush               uint64 // the first flush item that may confirm it
}

func (p *pendingConfirm) ready() bool { return p.stored && p.released }

func newConfirms(wr *writer, channel uint16) *confirms {
	return &confirms{wr: wr, channel: channel, low: 1, pending: make(map[uint64]*pendingConfirm)}
}

// next numbers a publish.
func (c *confirms) next() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last++
	c.pending[c.last] = &pendingConfirm{}
	return c.last
}

// stored records the broker's verdict on seq; a non-nil err nacks it.
func (c *confirms) stored(seq uint64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.pending[seq]; p != nil && !c.closed {
		p.stored, p.nack = true, err != nil
		c.readyLocked(p)
	}
}

// release lets seq's confirm go out; returned says the reader queued a
// basic.return for it just before.
func (c *confirms) release(seq uint64, returned bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.pending[seq]; p != nil && !c.closed {
		p.released = true
		if returned {
			p.minFlush = c.flushes + 1
		}
		c.readyLocked(p)
	}
}

// close drops every pending confirm: the channel is gone.
func (c *confirms) close() {
	c.mu.Lock()
	c.closed = true
	c.pending = nil
	c.mu.Unlock()
}

// readyLocked makes sure a flush item that may confirm p is queued.
func (c *confirms) readyLocked(p *pendingConfirm) {
	if !p.ready() {
		return
	}
	c.beyond++
	if c.queued && c.flushes >= p.minFlush {
		return
	}
	c.flushes++
	c.queued = true
	id := c.flushes
	c.wr.enqueue(outItem{channel: c.channel, lazy: func() []amqp.Method { return c.flush(id) }})
}

// flush runs in the writer goroutine when it reaches flush item id and
// returns the confirms to write.
func (c *confirms) flush(id uint64) []amqp.Method {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id == c.flushes {
		c.queued = false
	}
	if c.closed {
		return nil
	}
	eligible := func(p *pendingConfirm) bool { return p != nil && p.ready() && !p.sent && p.minFlush <= id }
	var out []amqp.Method
	acks, nacks := 0, 0
	count := func(n int, nack bool) {
		if nack {
			nacks += n
		} else {
			acks += n
		}
	}
	defer func() {
		if c.sent != nil && acks+nacks > 0 {
			c.sent(acks, nacks)
		}
	}()
	// Runs from the low end, one frame per run of the same verdict.
	for {
		p := c.pending[c.low]
		if p != nil && p.sent {
			delete(c.pending, c.low)
			c.low++
			continue
		}
		if !eligible(p) {
			break
		}
		start, end := c.low, c.low
		for q := c.pending[end+1]; eligible(q) && q.nack == p.nack; q = c.pending[end+1] {
			end++
		}
		out = append(out, confirm(end, end > start, p.nack))
		count(int(end-start+1), p.nack)
		for s := start; s <= end; s++ {
			delete(c.pending, s)
		}
		c.beyond -= int(end - start + 1)
		c.low = end + 1
	}
	// Ready publishes beyond a gap, one by one.
	for seq := c.low + 1; seq <= c.last && c.beyond > 0; seq++ {
		if p := c.pending[seq]; eligible(p) {
			p.sent = true
			c.beyond--
			out = append(out, confirm(seq, false, p.nack))
			count(1, p.nack)
		}
	}
	return out
}

func confirm(tag uint64, multiple, nack bool) amqp.Method {
	if nack {
		return &amqp.BasicNack{DeliveryTag: tag, Multiple: multiple}
	}
	return &amqp.BasicAck{DeliveryTag: tag, Multiple: multiple}
}
