package broker

import (
	"github.com/sluicemq/sluice/internal/access"
	"github.com/sluicemq/sluice/internal/message"
)

// consumer is one basic.consume on one queue.
type consumer struct {
	tag       string
	ch        *Channel
	q         *queue
	noAck     bool
	exclusive bool
	priority  int64
	prefetch  int // per-consumer limit fixed at creation (0: none)

	// Guarded by ch.mu.
	unacked   int
	cancelled bool
	// remote: the consumer's queue is (or was) led by another node
	// (remote_follower.go); once set it stays.
	remote *remoteConsumer
}

// Consume starts a consumer and returns its tag.
func (ch *Channel) Consume(req ConsumeRequest) (string, error) {
	if req.Queue == replyToQueue {
		return ch.consumeReply(req)
	}
	if err := ch.allow(access.Read, "queue", req.Queue); err != nil {
		return "", err
	}
	q, err := ch.vh.queueFor(ch.conn, req.Queue)
	if err != nil {
		return "", err
	}
	prio, err := consumerPriority(req.Args)
	if err != nil {
		return "", err
	}
	// As RabbitMQ (the channel's publishes reach the queue before its
	// consume does): what the connection published before the consume is
	// in its queues when the consumer starts.
	ch.conn.waitPublished()
	ch.mu.Lock()
	if ch.closed {
		ch.mu.Unlock()
		return "", errorf(PreconditionFailed, "channel is closed")
	}
	tag := req.Tag
	if tag == "" {
		tag = randomName("amq.ctag-")
	}
	if _, dup := ch.consumers[tag]; dup || (ch.reply != nil && ch.reply.tag == tag) {
		ch.mu.Unlock()
		return "", errorf(NotAllowed, "attempt to reuse consumer tag '%s'", tag)
	}
	c := &consumer{tag: tag, ch: ch, q: q, noAck: req.NoAck, exclusive: req.Exclusive,
		priority: prio, prefetch: ch.prefetch}
	ch.consumers[tag] = c
	ch.mu.Unlock()
	var rc *remoteConsumer
	if (q.quorum || q.home != "") && ch.session == nil {
		// A client's consumer of a quorum queue moves with its leader
		// (remote_follower.go); one of another node's classic queue
		// is that node's.
		// Attached here (local) unless refused: a move that starts as
		// soon as it is attached must see it so.
		rc = ch.remoteFor(c)
		rc.mu.Lock()
		rc.local = true
		rc.mu.Unlock()
	}
	err = q.addConsumer(c)
	if isNotServed(err) && rc != nil {
		// Led elsewhere: the consumer is its leader's.
		rc.mu.Lock()
		rc.local = false
		rc.mu.Unlock()
		err = ch.consumeRemote(c)
	}
	if err != nil {
		if rc != nil {
			rc.drop()
		}
		ch.mu.Lock()
		delete(ch.consumers, tag)
		ch.mu.Unlock()
		return "", err
	}
	return tag, nil
}

// consumerPriority reads the x-priority consumer argument.
func consumerPriority(args message.Table) (int64, error) {
	v, ok := args["x-priority"]
	if !ok {
		return 0, nil
	}
	n, ok := intValue(v)
	if !ok {
		return 0, errorf(PreconditionFailed, "invalid arg 'x-priority' for consumer: {unacceptable_type,%s}", typeName(v))
	}
	return n, nil
}

// Cancel ends a consumer. Its unacked messages stay unacked on the channel.
// Cancelling an unknown tag is not an error.
func (ch *Channel) Cancel(consumerTag string) error {
	if ch.cancelReply(consumerTag) {
		return nil
	}
	// As RabbitMQ: what the channel published before the cancel reaches
	// its queues first, so it goes to the consumers that were there.
	ch.conn.waitPublished()
	ch.mu.Lock()
	c, ok := ch.consumers[consumerTag]
	ch.mu.Unlock()
	if ok && c.q != nil {
		// They may still wait for the queue's dispatcher.
		c.q.dispatchPending()
	}
	ch.mu.Lock()
	c, ok = ch.consumers[consumerTag]
	if ok {
		delete(ch.consumers, consumerTag)
		c.cancelled = true
	}
	ch.mu.Unlock()
	if ok {
		if c.remote != nil {
			c.remote.cancel()
		}
		ch.detach(c)
	}
	return nil
}

// detach removes a cancelled consumer from its queue, deleting an
// auto-delete queue that lost its last consumer.
func (ch *Channel) detach(c *consumer) {
	if c.q.removeConsumer(c) {
		ch.vh.autoDeleteQueue(c.q)
	}
}

// brokerCancel ends a consumer whose queue went away and tells the client.
func (ch *Channel) brokerCancel(c *consumer) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	c.cancelled = true
	if ch.consumers[c.tag] == c {
		delete(ch.consumers, c.tag)
		if !ch.closed {
			ch.out.ConsumerCancelled(c.tag)
		}
	}
}
