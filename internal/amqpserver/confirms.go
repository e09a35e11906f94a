package amqpserver

import (
	"sync"

	"github.com/sluicemq/sluice/internal/amqp"
)

// confirms numbers a confirm-mode channel's publishes (from 1) and sends
// basic.ack / basic.nack for them. A publish is confirmed once the broker
// took it (stored, from any goroutine) and the reader released it (after it
// queued any basic.return, which must come first). Confirms of a contiguous
// run starting at the lowest unconfirmed number coalesce into one
// multiple=true frame; others go out one by one.
type confirms struct {
	wr      *writer
	channel uint16

	// mu guards the fields below and orders the confirms' enqueues.
	mu      sync.Mutex
	closed  bool
	last    uint64 // last number handed out
	low     uint64 // every number below low was confirmed
	pending map[uint64]*pendingConfirm
}

type pendingConfirm struct {
	stored, released, sent bool
	nack                   bool
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
		c.sendLocked(seq)
	}
}

// release lets seq's confirm go out.
func (c *confirms) release(seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.pending[seq]; p != nil && !c.closed {
		p.released = true
		c.sendLocked(seq)
	}
}

// close drops every pending confirm: the channel is gone.
func (c *confirms) close() {
	c.mu.Lock()
	c.closed = true
	c.pending = nil
	c.mu.Unlock()
}

func (c *confirms) sendLocked(seq uint64) {
	p := c.pending[seq]
	if !p.ready() {
		return
	}
	if seq != c.low {
		p.sent = true
		c.emitLocked(seq, false, p.nack)
		return
	}
	for {
		p := c.pending[c.low]
		if p == nil || !p.ready() {
			return
		}
		if p.sent {
			delete(c.pending, c.low)
			c.low++
			continue
		}
		start, end := c.low, c.low
		for q := c.pending[end+1]; q != nil && q.ready() && !q.sent && q.nack == p.nack; q = c.pending[end+1] {
			end++
		}
		c.emitLocked(end, end > start, p.nack)
		for s := start; s <= end; s++ {
			delete(c.pending, s)
		}
		c.low = end + 1
	}
}

func (c *confirms) emitLocked(tag uint64, multiple, nack bool) {
	if nack {
		c.wr.method(c.channel, &amqp.BasicNack{DeliveryTag: tag, Multiple: multiple})
		return
	}
	c.wr.method(c.channel, &amqp.BasicAck{DeliveryTag: tag, Multiple: multiple})
}
