package broker

// The leader's side of a session (remote.go): a follower channel's
// session is a Channel of this broker whose Outlet sends to the follower.

import (
	"encoding/binary"
	"errors"
	"sync/atomic"

	"github.com/sluicemq/sluice/internal/message"
)

type servedKey struct {
	from string // the follower's node
	id   uint64 // its session id
}

// servedSession is a follower channel's session with this node.
type servedSession struct {
	key    servedKey
	env    *env
	ch     *Channel
	closed atomic.Bool
}

// sessionOutlet sends a session channel's deliveries and cancellations to
// its follower. It is called with the queue's and the channel's locks
// held: a message that cannot be sent breaks the session, on a goroutine
// of its own.
type sessionOutlet struct{ s *servedSession }

func (o sessionOutlet) Deliver(d *Delivery) {
	s := o.s
	w, err := encodeDelivery(appendString(nil, d.ConsumerTag), d)
	if err != nil {
		// A record this broker cannot encode could not be sent to a
		// client either: taken back as amqpserver does.
		s.env.log.Warn("cluster: encode a delivery for a remote consumer", "err", err)
		go s.ch.Undeliverable(d.DeliveryTag)
		return
	}
	if !s.env.sendMessage(s.key.from, msgDeliver, s.key.id, w) {
		go s.env.closeServed(s, true)
	}
}

func (o sessionOutlet) ConsumerCancelled(tag string) {
	s := o.s
	if !s.env.sendMessage(s.key.from, msgCancelled, s.key.id, appendString(nil, tag)) {
		go s.env.closeServed(s, true)
	}
}

// tookBack tells the follower that a consumer timeout took a delivery
// back (called with the queue's and the channel's locks held).
func (s *servedSession) tookBack(tag uint64) {
	if !s.env.sendMessage(s.key.from, msgTookBack, s.key.id, binary.AppendUvarint(nil, tag)) {
		go s.env.closeServed(s, true)
	}
}

// servedSession returns the session id of node from, opening it in vh.
func (e *env) servedSession(from string, id uint64, vh *vhost) (*servedSession, error) {
	k := servedKey{from, id}
	rs := e.remotes
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if s := rs.served[k]; s != nil {
		if s.ch.vh != vh {
			return nil, errorf(PreconditionFailed, "session %d of node %s is in vhost '%s'", id, from, s.ch.vh.name)
		}
		return s, nil
	}
	s := &servedSession{key: k, env: e}
	// Permissions were checked on the follower, for its client.
	conn := newConnection(vh, ConnInfo{Name: "cluster session of node " + from, VHost: vh.name})
	s.ch = conn.channel(1, sessionOutlet{s}, nil)
	s.ch.session = s
	rs.served[k] = s
	return s, nil
}

// closeServed ends a session: its unacked deliveries return to their
// queues and its consumers go. tell: the follower is told (msgClosed).
func (e *env) closeServed(s *servedSession, tell bool) {
	if !s.closed.CompareAndSwap(false, true) {
		return
	}
	rs := e.remotes
	rs.mu.Lock()
	if rs.served[s.key] == s {
		delete(rs.served, s.key)
	}
	rs.mu.Unlock()
	s.ch.Close()
	if tell {
		e.sendClose(s.key.from, msgClosed, s.key.id)
	}
}

// closeServedFrom ends every session of node.
func (e *env) closeServedFrom(node string) {
	rs := e.remotes
	rs.mu.Lock()
	var ss []*servedSession
	for k, s := range rs.served {
		if k.from == node {
			ss = append(ss, s)
		}
	}
	rs.mu.Unlock()
	for _, s := range ss {
		e.closeServed(s, false)
	}
}

// leaderMessage handles a follower's message about session id.
func (e *env) leaderMessage(from string, kind byte, id uint64, r *reader) {
	rs := e.remotes
	rs.mu.Lock()
	s := rs.served[servedKey{from, id}]
	rs.mu.Unlock()
	if s == nil {
		if kind != msgClose {
			// A session this node dropped: the follower must drop it too.
			e.sendMessage(from, msgClosed, id, nil)
		}
		return
	}
	switch kind {
	case msgSettle:
		how := settleKind(r.byte())
		n := r.uvarint()
		tags := make([]uint64, 0, min(n, remoteWindow))
		for range n {
			if r.bad {
				break
			}
			tags = append(tags, r.uvarint())
		}
		if r.bad || how > settleDiscard {
			e.log.Warn("cluster: malformed settlement; closing the session", "from", from)
			e.closeServed(s, true)
			return
		}
		s.ch.settleSessionTags(tags, how)
	case msgWritten:
		n := r.uvarint()
		if !r.bad {
			s.ch.Written(int(min(n, 1<<31)))
		}
	case msgClose:
		e.closeServed(s, false)
	case msgQos:
		if n := r.uvarint(); !r.bad {
			s.ch.Qos(0, uint16(min(n, 1<<16-1)), true)
		}
	}
}

// settleSessionTags settles a session's deliveries by tag, ignoring those
// it does not hold (settled already, or taken back by a consumer timeout).
func (ch *Channel) settleSessionTags(tags []uint64, how settleKind) {
	ch.mu.Lock()
	ps := make([]pending, 0, len(tags))
	for _, t := range tags {
		if p, ok := ch.unacked[t]; ok {
			delete(ch.unacked, t)
			ch.releaseCreditLocked(p)
			ps = append(ps, p)
		}
	}
	ch.compactOrderLocked()
	ch.mu.Unlock()
	ch.countSettled(ps, how)
	ch.settle(ps, how)
}

// acceptSession serves a follower's get, consume, cancel or purge of q.
// It runs on the transport's reader, in the order the follower sent them
// (a purge, which waits for its sync, goes on a goroutine).
func (e *env) acceptSession(from string, kind byte, vh *vhost, q *queue, payload []byte, respond func([]byte, error)) {
	fail := func(err error) { respond(nil, encodeRemoteError(err)) }
	r := reader{b: payload}
	if kind == fwdPurge {
		go func() {
			n, err := q.purge()
			if err != nil {
				fail(err)
				return
			}
			respond(binary.AppendUvarint(nil, uint64(n)), nil)
		}()
		return
	}
	id := r.u64()
	if kind == fwdCancel {
		tag := r.string()
		if err := r.err(); err != nil {
			fail(err)
			return
		}
		rs := e.remotes
		rs.mu.Lock()
		s := rs.served[servedKey{from, id}]
		rs.mu.Unlock()
		if s != nil {
			s.ch.Cancel(tag)
		}
		respond(nil, nil)
		return
	}
	s, err := e.servedSession(from, id, vh)
	if err != nil {
		fail(err)
		return
	}
	switch kind {
	case fwdGet:
		noAck := r.byte() != 0
		if err := r.err(); err != nil {
			fail(err)
			return
		}
		d, err := s.ch.Get(q.name, noAck)
		switch {
		case err != nil:
			fail(err)
			return
		case d == nil:
			respond(nil, nil)
			return
		}
		if s.closed.Load() {
			// Closed meanwhile (the connection went): the delivery may
			// have missed the channel's close.
			s.ch.settleSessionTags([]uint64{d.DeliveryTag}, settleRequeue)
			fail(errors.New("session closed"))
			return
		}
		resp, err := encodeDelivery(nil, d)
		if err != nil {
			s.ch.Undeliverable(d.DeliveryTag)
			fail(err)
			return
		}
		respond(resp, nil)
	case fwdConsume:
		tag := r.string()
		flags := r.byte()
		prio := r.varint()
		prefetch, global := r.uvarint(), r.uvarint()
		if err := r.err(); err != nil {
			fail(err)
			return
		}
		ch := s.ch
		ch.mu.Lock()
		ch.prefetch, ch.globalPrefetch = int(min(prefetch, 1<<16)), int(min(global, 1<<16))
		_, dup := ch.consumers[tag]
		ch.mu.Unlock()
		if dup {
			// A consumer the follower moved away and back: the old one
			// goes first.
			ch.Cancel(tag)
		}
		var args message.Table
		if prio != 0 {
			args = message.Table{"x-priority": prio}
		}
		_, err := ch.Consume(ConsumeRequest{Queue: q.name, Tag: tag, NoAck: flags&consumeNoAck != 0,
			Exclusive: flags&consumeExclusive != 0, Args: args})
		respond(nil, encodeRemoteError(err))
	default:
		fail(errors.New("unknown forwarded request"))
	}
}
