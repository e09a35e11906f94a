package broker

// Message statistics: plain counters (typed atomics) bumped next to the
// code that moves messages, per queue, per exchange and broker-wide, for
// the HTTP API's message_stats and /metrics. They only ever grow; rates
// are the readers' business (httpapi samples them). A queue's or an
// exchange's counters go with it when it is deleted; the broker-wide ones
// last until the process ends (they are not persisted).
//
// Counting never takes a lock: the counters sit in the structs they
// describe and are read with Load, so a snapshot is not atomic across
// counters (a delivery may be counted before the matching publish is).

import "sync/atomic"

// deadLetterReasons are the reasons a message is dead-lettered, as
// RabbitMQ names them in x-death, in the order of MessageStats.DeadLettered.
var deadLetterReasons = [...]string{reasonRejected, reasonExpired, reasonMaxLen, reasonDeliveryLimit, reasonInvalid}

// DeadLetterReasons returns the reasons a message is dead-lettered, in the
// order of MessageStats.DeadLettered.
func DeadLetterReasons() []string { return deadLetterReasons[:] }

// MessageStats is a snapshot of message counters since the broker started
// (broker-wide), since the queue was declared or recovered (per queue) or
// since the channel was opened (per channel: Publish counts its publishes;
// Expired and DeadLettered stay 0).
type MessageStats struct {
	// Publish counts messages published by clients (broker-wide) or
	// messages that entered the queue (per queue, dead letters and
	// redriven messages included).
	Publish uint64
	// Deliver and DeliverNoAck count deliveries to consumers, Get and
	// GetNoAck messages taken by basic.get; Redeliver counts those of
	// them that had been delivered before.
	Deliver, DeliverNoAck, Get, GetNoAck, Redeliver uint64
	// Ack counts acknowledged deliveries; Nack those rejected or nacked
	// (requeued or not).
	Ack, Nack uint64
	// Expired counts messages whose TTL ran out in a queue (dead-lettered
	// or dropped).
	Expired uint64
	// DeadLettered counts messages republished to a dead-letter target,
	// by reason (DeadLetterReasons' order).
	DeadLettered [len(deadLetterReasons)]uint64
	// ReturnUnroutable and DropUnroutable count publishes no queue took,
	// returned (mandatory) or dropped (broker-wide only).
	ReturnUnroutable, DropUnroutable uint64
	// GetEmpty counts basic.get answered get-empty; Confirm counts
	// publisher confirms sent as basic.ack (broker-wide and per channel).
	GetEmpty, Confirm uint64
}

// DeliverGet is every delivery and get, as RabbitMQ's deliver_get.
func (s MessageStats) DeliverGet() uint64 { return s.Deliver + s.DeliverNoAck + s.Get + s.GetNoAck }

// DeadLetteredTotal sums DeadLettered.
func (s MessageStats) DeadLetteredTotal() uint64 {
	var n uint64
	for _, v := range s.DeadLettered {
		n += v
	}
	return n
}

// msgCounters are the live counters behind a MessageStats.
type msgCounters struct {
	publish, deliver, deliverNoAck, get, getNoAck, redeliver atomic.Uint64
	ack, nack, expired, returned, dropped                    atomic.Uint64
	getEmpty, confirm                                        atomic.Uint64
	dead                                                     [len(deadLetterReasons)]atomic.Uint64
}

// countDelivery counts one message handed out by a consumer delivery or
// basic.get (get), with or without an ack to come.
func (c *msgCounters) countDelivery(noAck, get, redelivered bool) {
	switch {
	case get && noAck:
		c.getNoAck.Add(1)
	case get:
		c.get.Add(1)
	case noAck:
		c.deliverNoAck.Add(1)
	default:
		c.deliver.Add(1)
	}
	if redelivered {
		c.redeliver.Add(1)
	}
}

func (c *msgCounters) snapshot() MessageStats {
	s := MessageStats{
		Publish: c.publish.Load(), Deliver: c.deliver.Load(), DeliverNoAck: c.deliverNoAck.Load(),
		Get: c.get.Load(), GetNoAck: c.getNoAck.Load(), Redeliver: c.redeliver.Load(),
		Ack: c.ack.Load(), Nack: c.nack.Load(), Expired: c.expired.Load(),
		ReturnUnroutable: c.returned.Load(), DropUnroutable: c.dropped.Load(),
		GetEmpty: c.getEmpty.Load(), Confirm: c.confirm.Load(),
	}
	for i := range c.dead {
		s.DeadLettered[i] = c.dead[i].Load()
	}
	return s
}

// MessageStats returns the broker-wide counters.
func (b *Broker) MessageStats() MessageStats { return b.env.stats.snapshot() }

// countEnqueued counts n messages entering q.
func (q *queue) countEnqueued(n int) { q.stats.publish.Add(uint64(n)) }

// countDelivered counts e going out to a consumer (get false) or to
// basic.get (get true).
func (q *queue) countDelivered(e entry, noAck, get bool) {
	for _, c := range [...]*msgCounters{&q.stats, &q.env.stats} {
		c.countDelivery(noAck, get, e.flags&entryRedelivered != 0)
	}
}

// countDiscarded counts a message leaving q by discardLocked.
func (q *queue) countDiscarded(reason string) {
	if reason == reasonExpired {
		q.stats.expired.Add(1)
		q.env.stats.expired.Add(1)
	}
}

// countDeadLettered counts a message from q republished to a dead-letter
// target.
func (q *queue) countDeadLettered(reason string) {
	for i, r := range deadLetterReasons {
		if r == reason {
			q.stats.dead[i].Add(1)
			q.env.stats.dead[i].Add(1)
			return
		}
	}
}

// countSettled counts acks (how settleAck) or nacks and rejects of ps,
// skipping deliveries the queue took back meanwhile.
func (ch *Channel) countSettled(ps []pending, how settleKind) {
	for _, p := range ps {
		if p.stale {
			continue
		}
		for _, c := range [...]*msgCounters{&p.q.stats, &ch.env.stats, &ch.stats} {
			if how == settleAck {
				c.ack.Add(1)
			} else {
				c.nack.Add(1)
			}
		}
	}
}

// countPublished counts a client's publish; routed false means no queue
// took it (returned when mandatory, else dropped).
func (ch *Channel) countPublished(routed, mandatory bool) {
	for _, c := range [...]*msgCounters{&ch.env.stats, &ch.stats} {
		c.publish.Add(1)
		switch {
		case routed:
		case mandatory:
			c.returned.Add(1)
		default:
			c.dropped.Add(1)
		}
	}
}

// countGetEmpty counts a basic.get of q that found nothing.
func (ch *Channel) countGetEmpty(q *queue) {
	for _, c := range [...]*msgCounters{&q.stats, &ch.env.stats, &ch.stats} {
		c.getEmpty.Add(1)
	}
}

// CountConfirms records publisher confirms the front door sent on the
// channel: acks basic.ack and nacks basic.nack, each covering one publish.
func (ch *Channel) CountConfirms(acks, nacks int) {
	ch.env.stats.confirm.Add(uint64(acks))
	ch.stats.confirm.Add(uint64(acks))
	ch.confirmsSent.Add(uint64(acks + nacks))
}

// unconfirmed is how many of the channel's publishes since confirm.select
// have had no confirm yet.
func (ch *Channel) unconfirmed(confirmFrom uint64) int {
	sent := ch.confirmsSent.Load()
	published := ch.stats.publish.Load()
	if published < confirmFrom+sent {
		return 0
	}
	return int(published - confirmFrom - sent)
}

// countDelivery counts d handed to the channel by a consumer delivery or
// basic.get.
func (ch *Channel) countDelivery(d *Delivery, noAck, get bool) {
	ch.stats.countDelivery(noAck, get, d.Redelivered)
}

// exchangeCounters count messages through an exchange: published into it
// and routed out of it (one per target queue).
type exchangeCounters struct {
	in, out atomic.Uint64
}

func (x *exchange) countRouted(targets int) {
	x.stats.in.Add(1)
	x.stats.out.Add(uint64(targets))
}
