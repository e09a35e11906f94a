package broker

import "sync/atomic"

// ObjectStats counts the broker's objects coming and going since it
// started, as RabbitMQ's *_opened_total, *_closed_total, queues_declared,
// queues_created and queues_deleted counters do. They say how much churn
// there is (a connection leak, a client that declares a queue per message),
// which the gauges of what is open now cannot.
type ObjectStats struct {
	ConnectionsOpened, ConnectionsClosed uint64
	ChannelsOpened, ChannelsClosed       uint64
	// QueuesDeclared counts queue.declare calls that were not passive,
	// QueuesCreated those that made a new queue; QueuesDeleted counts
	// queues removed for any reason (delete, auto-delete, exclusive owner
	// gone, expiry, vhost deleted).
	QueuesDeclared, QueuesCreated, QueuesDeleted uint64
}

// objectCounters are the live counters behind ObjectStats.
type objectCounters struct {
	connOpened, connClosed atomic.Uint64
	chanOpened, chanClosed atomic.Uint64
	qDeclared, qCreated    atomic.Uint64
	qDeleted               atomic.Uint64
}

// ObjectStats returns the object counters.
func (b *Broker) ObjectStats() ObjectStats {
	c := &b.env.objects
	return ObjectStats{
		ConnectionsOpened: c.connOpened.Load(), ConnectionsClosed: c.connClosed.Load(),
		ChannelsOpened: c.chanOpened.Load(), ChannelsClosed: c.chanClosed.Load(),
		QueuesDeclared: c.qDeclared.Load(), QueuesCreated: c.qCreated.Load(), QueuesDeleted: c.qDeleted.Load(),
	}
}
