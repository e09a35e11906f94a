package amqpserver

import (
	"sync"

	"github.com/sluicemq/sluice/internal/amqp"
	"github.com/sluicemq/sluice/internal/broker"
)

// outlet is a channel's broker.Outlet: it turns deliveries and broker-side
// cancellations into writer items. Broker goroutines call it; the channel's
// reader goroutine sets it up around basic.consume so that consume-ok
// precedes the consumer's first delivery.
type outlet struct {
	wr           *writer
	channel      uint16
	cancelNotify bool

	// mu guards the fields below and orders enqueues.
	mu      sync.Mutex
	b       *broker.Channel
	written func()           // b.Written(1), after a no-ack delivery went out
	undeliv func(tag uint64) // b.Undeliverable
	closed  bool
	noAck   map[string]bool // consumer tags of no-ack consumers
	holding string          // consumer being set up: its deliveries wait
	held    []outItem       // their bytes reserved in wr
	heldN   int64
}

func newOutlet(wr *writer, channel uint16, cancelNotify bool) *outlet {
	return &outlet{wr: wr, channel: channel, cancelNotify: cancelNotify, noAck: make(map[string]bool)}
}

func (o *outlet) setBroker(b *broker.Channel) {
	o.mu.Lock()
	o.b = b
	o.written, o.undeliv = func() { b.Written(1) }, b.Undeliverable
	o.mu.Unlock()
}

// Deliver implements broker.Outlet.
func (o *outlet) Deliver(d *broker.Delivery) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return
	}
	it := o.itemLocked(d)
	if d.ConsumerTag == o.holding {
		n := it.size()
		o.wr.reserve(n)
		o.held = append(o.held, it)
		o.heldN += n
		return
	}
	o.wr.enqueue(it)
}

func (o *outlet) itemLocked(d *broker.Delivery) outItem {
	it := outItem{
		channel: o.channel,
		deliver: amqp.BasicDeliver{
			ConsumerTag: d.ConsumerTag,
			DeliveryTag: d.DeliveryTag,
			Redelivered: d.Redelivered,
			Exchange:    d.Exchange,
			RoutingKey:  d.RoutingKey,
		},
		content: true,
		props:   &d.Properties,
		raw:     d.RawProperties,
		body:    d.Body,
	}
	if o.b != nil {
		if o.noAck[d.ConsumerTag] {
			it.after = o.written
		} else {
			it.undeliverable, it.tag = o.undeliv, d.DeliveryTag
		}
	}
	return it
}

// dropHeldLocked forgets the held deliveries and their reserved bytes.
func (o *outlet) dropHeldLocked() {
	if o.heldN > 0 {
		o.wr.written(o.heldN)
	}
	o.held, o.heldN = nil, 0
}

// ConsumerCancelled implements broker.Outlet: basic.cancel from the server,
// sent only to clients that advertised consumer_cancel_notify.
func (o *outlet) ConsumerCancelled(tag string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.noAck, tag)
	if o.closed || !o.cancelNotify {
		return
	}
	o.wr.method(o.channel, &amqp.BasicCancel{ConsumerTag: tag, NoWait: true})
}

// hold makes deliveries to tag wait until release; it notes whether the
// consumer is no-ack.
func (o *outlet) hold(tag string, noAck bool) {
	o.mu.Lock()
	o.holding = tag
	if noAck {
		o.noAck[tag] = true
	}
	o.mu.Unlock()
}

// release enqueues first (consume-ok, when not nil) and then the held
// deliveries. With ok false the consumer was refused: held deliveries are
// dropped.
func (o *outlet) release(first amqp.Method, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !ok {
		delete(o.noAck, o.holding)
	}
	if first != nil && !o.closed {
		o.wr.method(o.channel, first)
	}
	if ok && !o.closed && len(o.held) > 0 {
		o.wr.enqueueReserved(o.held...)
		o.held, o.heldN = nil, 0
	}
	o.dropHeldLocked()
	o.holding = ""
}

// forget drops a cancelled consumer's no-ack note.
func (o *outlet) forget(tag string) {
	o.mu.Lock()
	delete(o.noAck, tag)
	o.mu.Unlock()
}

// close drops all later deliveries.
func (o *outlet) close() {
	o.mu.Lock()
	o.closed = true
	o.dropHeldLocked()
	o.mu.Unlock()
}
