package broker

// Sharing a channel-wide prefetch limit (basic.qos global=true) among the
// queues a channel consumes from. As RabbitMQ's limiter, credit an ack
// frees is offered to every queue waiting on the limit in turn — not
// first to the queue whose message was acked, which would otherwise take
// it every time and starve the others.

import (
	"cmp"
	"slices"
)

// sharesCredit reports whether the channel has a channel-wide limit that
// consumers on more than one queue share.
func (ch *Channel) sharesCredit() bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.globalPrefetch == 0 {
		return false
	}
	var first *queue
	for _, c := range ch.consumers {
		switch {
		case c.q == nil:
		case first == nil:
			first = c.q
		case c.q != first:
			return true
		}
	}
	return false
}

// settleShared is settle for a channel whose limit is shared: the queues
// settle without handing the freed credit to this channel's consumers
// (other channels' consumers may take requeued messages), then shareCredit
// offers it round.
func (ch *Channel) settleShared(qs []*queue, byQ map[*queue][]settled, how settleKind) {
	ch.mu.Lock()
	ch.holdCredit++
	ch.mu.Unlock()
	for _, q := range qs {
		q.settle(byQ[q], how, &ch.conn.deaths)
	}
	ch.mu.Lock()
	ch.holdCredit--
	ch.mu.Unlock()
	ch.shareCredit()
}

// shareCredit dispatches the queues of the channel's consumers, starting
// each time with the next one in a fixed order.
func (ch *Channel) shareCredit() {
	ch.mu.Lock()
	var qs []*queue
	for _, c := range ch.consumers {
		if c.q != nil && !slices.Contains(qs, c.q) {
			qs = append(qs, c.q)
		}
	}
	slices.SortFunc(qs, func(a, b *queue) int { return cmp.Compare(a.id, b.id) })
	start := 0
	if len(qs) > 0 {
		start = ch.kickRR % len(qs)
		ch.kickRR++
	}
	ch.mu.Unlock()
	for i := range qs {
		qs[(start+i)%len(qs)].dispatch()
	}
	for _, rc := range ch.remoteConsumers() {
		rc.flush()
	}
}
