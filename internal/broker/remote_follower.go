package broker

// The follower's side of a session (remote.go): a client channel's gets
// and consumers of quorum queues led by another node.

import (
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicemq/sluice/internal/message"
)

// remoteSession is a client channel's session with one leader node.
type remoteSession struct {
	env    *env
	ch     *Channel
	node   string
	id     uint64
	broken atomic.Bool
}

// remoteConsumer is the follower's part of a consumer whose queue is (or
// was) led elsewhere. A consumer is at any time attached here (local: this
// node serves the queue), bound to a session with the leader (sess), or
// moving (looking for the leader); run moves it.
type remoteConsumer struct {
	c *consumer
	q *queue

	mu     sync.Mutex
	sess   *remoteSession
	local  bool
	moving bool
	buf    []remoteDelivery // received, waiting for the channel's credit (at most remoteWindow)
	// seen guards recent and suspect; it is taken last (under ch.mu).
	// recent are the seqs of the last deliveries handed to the client
	// (a ring, next the slot to write); suspect, those it had when its
	// leader was lost last. A delivery's "delivered" record is written
	// unsynced, so a leader's death may lose it (and the ack): a message
	// the client got from the old leader then comes from the new one
	// unflagged. The consumer knows better and flags it redelivered.
	seen    sync.Mutex
	recent  [1024]uint64
	next    int
	suspect map[uint64]struct{}
}

// note flags d redelivered when the client had it before its leader was
// lost, and remembers it. Called with ch.mu held, before d goes out.
func (rc *remoteConsumer) note(d *Delivery) {
	rc.seen.Lock()
	defer rc.seen.Unlock()
	if _, ok := rc.suspect[d.seq]; ok {
		delete(rc.suspect, d.seq)
		if !d.Redelivered {
			markRedelivered(d)
		}
	}
	rc.recent[rc.next] = d.seq
	rc.next = (rc.next + 1) % len(rc.recent)
}

// suspectRecent makes the recent deliveries suspect: the leader they came
// from is lost.
func (rc *remoteConsumer) suspectRecent() {
	rc.seen.Lock()
	defer rc.seen.Unlock()
	rc.suspect = make(map[uint64]struct{}, len(rc.recent))
	for _, seq := range rc.recent {
		if seq != 0 {
			rc.suspect[seq] = struct{}{}
		}
	}
}

type remoteDelivery struct {
	sess *remoteSession
	ltag uint64 // the leader's delivery tag
	d    *Delivery
}

// sessionWith returns ch's live session with node, opening one; nil once
// ch is closed (closeRemotes would not see a later one).
func (ch *Channel) sessionWith(node string) *remoteSession {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.closed {
		return nil
	}
	if s := ch.remotes[node]; s != nil && !s.broken.Load() {
		return s
	}
	rs := ch.env.remotes
	rs.mu.Lock()
	rs.nextID++
	s := &remoteSession{env: ch.env, ch: ch, node: node, id: rs.nextID}
	rs.byID[s.id] = s
	rs.mu.Unlock()
	if ch.remotes == nil {
		ch.remotes = make(map[string]*remoteSession)
	}
	ch.remotes[node] = s
	return s
}

// send sends a message on s; one that cannot be sent breaks s.
func (s *remoteSession) send(kind byte, body []byte) {
	if !s.broken.Load() && !s.env.sendMessage(s.node, kind, s.id, body) {
		s.fail(true)
	}
}

// fail drops a broken session: its consumers move (re-attach), and the
// deliveries it holds unacked return to their queues on the leader when
// the leader drops it too (told, or on losing the connection).
func (s *remoteSession) fail(tell bool) {
	if !s.broken.CompareAndSwap(false, true) {
		return
	}
	s.env.remotes.forget(s)
	if tell {
		s.env.sendClose(s.node, msgClose, s.id)
	}
	s.ch.staleWhere(func(p pending) bool { return p.rs == s })
	for _, rc := range s.ch.remoteConsumers() {
		rc.lost(s)
	}
}

func (rs *remotes) forget(s *remoteSession) {
	rs.mu.Lock()
	if rs.byID[s.id] == s {
		delete(rs.byID, s.id)
	}
	rs.mu.Unlock()
}

// dropSessionsWith fails every session with node.
func (e *env) dropSessionsWith(node string) {
	rs := e.remotes
	rs.mu.Lock()
	var ss []*remoteSession
	for _, s := range rs.byID {
		if s.node == node {
			ss = append(ss, s)
		}
	}
	rs.mu.Unlock()
	for _, s := range ss {
		s.fail(false)
	}
}

// followerMessage handles a leader's message about session id.
func (e *env) followerMessage(from string, kind byte, id uint64, r *reader) {
	rs := e.remotes
	rs.mu.Lock()
	s := rs.byID[id]
	rs.mu.Unlock()
	if s == nil || s.node != from {
		if kind != msgClosed {
			e.sendMessage(from, msgClose, id, nil)
		}
		return
	}
	switch kind {
	case msgDeliver:
		tag := r.string()
		d, err := decodeDelivery(r)
		if err != nil {
			e.log.Warn("cluster: malformed delivery; dropping the session", "from", from, "err", err)
			s.fail(true)
			return
		}
		s.deliver(tag, d)
	case msgCancelled:
		tag := r.string()
		if rc := s.ch.remoteConsumer(tag); rc != nil {
			rc.lost(s)
		}
	case msgClosed:
		s.fail(false)
	case msgTookBack:
		ltag := r.uvarint()
		if !r.bad {
			s.ch.staleWhere(func(p pending) bool { return p.rs == s && p.seq == ltag })
			s.ch.kick(nil)
		}
	}
}

// deliver hands a delivery from the leader to its consumer, or sends it
// back when no consumer here takes it any more.
func (s *remoteSession) deliver(tag string, d *Delivery) {
	rc := s.ch.remoteConsumer(tag)
	if rc == nil || !rc.push(s, d) {
		s.send(msgSettle, encodeSettle(settleRequeue, []uint64{d.DeliveryTag}))
		s.send(msgWritten, binary.AppendUvarint(nil, 1))
		return
	}
	rc.flush()
}

func encodeSettle(how settleKind, tags []uint64) []byte {
	w := make([]byte, 0, 2+len(tags)*3)
	w = append(w, byte(how))
	w = binary.AppendUvarint(w, uint64(len(tags)))
	for _, t := range tags {
		w = binary.AppendUvarint(w, t)
	}
	return w
}

// remoteConsumer returns the remote part of ch's consumer tag, if any.
func (ch *Channel) remoteConsumer(tag string) *remoteConsumer {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if c := ch.consumers[tag]; c != nil {
		return c.remote
	}
	return nil
}

// remoteConsumers returns the remote parts of ch's consumers.
func (ch *Channel) remoteConsumers() []*remoteConsumer {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	var rcs []*remoteConsumer
	for _, c := range ch.consumers {
		if c.remote != nil {
			rcs = append(rcs, c.remote)
		}
	}
	return rcs
}

// push buffers a delivery from s; false when the consumer is not bound to
// s (any more).
func (rc *remoteConsumer) push(s *remoteSession, d *Delivery) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.sess != s {
		return false
	}
	rc.buf = append(rc.buf, remoteDelivery{sess: s, ltag: d.DeliveryTag, d: d})
	return true
}

// flush hands buffered deliveries to the client while its channel has
// credit, and reports them to the leader (their window frees).
func (rc *remoteConsumer) flush() {
	rc.mu.Lock()
	n := 0
	for ; n < len(rc.buf); n++ {
		rd := rc.buf[n]
		if !rc.c.ch.deliverTracked(rc.c, pending{q: rc.q, seq: rd.ltag, c: rc.c, rs: rd.sess}, rd.d) {
			break
		}
	}
	if n == 0 {
		rc.mu.Unlock()
		return
	}
	s := rc.buf[0].sess
	rc.buf = append(rc.buf[:0], rc.buf[n:]...)
	rc.mu.Unlock()
	s.send(msgWritten, binary.AppendUvarint(nil, uint64(n)))
}

// unbindLocked detaches rc from its session, returning the session and
// the leader tags of the deliveries it buffered (to send back).
func (rc *remoteConsumer) unbindLocked() (*remoteSession, []uint64) {
	s := rc.sess
	rc.sess = nil
	var tags []uint64
	for _, rd := range rc.buf {
		tags = append(tags, rd.ltag)
	}
	rc.buf = rc.buf[:0]
	return s, tags
}

// sendBack returns buffered deliveries to the leader's queue.
func sendBack(s *remoteSession, tags []uint64) {
	if s == nil || len(tags) == 0 {
		return
	}
	s.send(msgSettle, encodeSettle(settleRequeue, tags))
	s.send(msgWritten, binary.AppendUvarint(nil, uint64(len(tags))))
}

// lost says rc's session s no longer feeds it (broken, the leader
// cancelled the consumer or stopped leading): rc moves.
func (rc *remoteConsumer) lost(s *remoteSession) {
	rc.mu.Lock()
	if rc.sess != s || s == nil {
		rc.mu.Unlock()
		return
	}
	_, tags := rc.unbindLocked()
	start := !rc.moving
	rc.moving = true
	rc.mu.Unlock()
	sendBack(s, tags)
	rc.suspectRecent()
	rc.c.ch.staleWhere(func(p pending) bool { return p.rs == s && p.c == rc.c })
	if start {
		go rc.move()
	}
}

// staleWhere marks the unacked deliveries that match as taken back: their
// queue's leader has them again (or will redeliver them after a
// failover), so they free their credit now and a later ack or nack of
// them is ignored.
func (ch *Channel) staleWhere(match func(p pending) bool) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	for tag, p := range ch.unacked {
		if !p.stale && match(p) {
			ch.releaseCreditLocked(p)
			p.c, p.stale = nil, true
			ch.unacked[tag] = p
		}
	}
}

// moveAway moves a consumer attached here whose queue this node stopped
// serving.
func (rc *remoteConsumer) moveAway() {
	rc.suspectRecent()
	rc.c.ch.staleWhere(func(p pending) bool { return p.rs == nil && p.c == rc.c })
	rc.mu.Lock()
	rc.local = false
	start := !rc.moving
	rc.moving = true
	rc.mu.Unlock()
	if start {
		go rc.move()
	}
}

// move re-attaches rc to its queue's leader; if none takes it within
// moveTimeout, the client hears basic.cancel and may consume again.
func (rc *remoteConsumer) move() {
	if err := rc.run(); err != nil {
		rc.env().log.Info("cluster: a consumer's queue has no reachable leader; cancelled",
			"queue", rc.q.name, "consumer", rc.c.tag, "err", err)
		rc.drop()
		rc.c.ch.brokerCancel(rc.c)
	}
}

func (rc *remoteConsumer) env() *env { return rc.q.env }

// run attaches rc (it is moving) until it is attached or bound, and ends
// the move.
func (rc *remoteConsumer) run() error {
	for {
		err := rc.attach()
		rc.mu.Lock()
		if err == nil && rc.sess == nil && !rc.local {
			// Lost again while it attached.
			rc.mu.Unlock()
			continue
		}
		rc.moving = false
		rc.mu.Unlock()
		return err
	}
}

// attach makes one consumer of rc's queue for rc: here if this node serves
// it, else on its leader through a session.
func (rc *remoteConsumer) attach() error {
	e, c, q := rc.env(), rc.c, rc.q
	gone := func() error {
		if c.ch.consumerGone(c) {
			return errorf(PreconditionFailed, "consumer '%s' cancelled", c.tag)
		}
		if q.isDeleted() {
			return errorf(NotFound, "no queue '%s' in vhost '%s'", q.name, q.vh.name)
		}
		return nil
	}
	return q.onLeader(func() error {
		if err := gone(); err != nil {
			return err
		}
		err := q.addConsumer(c)
		if err == nil {
			rc.mu.Lock()
			rc.local = true
			rc.mu.Unlock()
		}
		return err
	}, func(leader string) error {
		if err := gone(); err != nil {
			return err
		}
		s := c.ch.sessionWith(leader)
		if s == nil {
			return gone()
		}
		rc.mu.Lock()
		rc.sess, rc.local = s, false
		rc.mu.Unlock()
		_, err := e.forwardWait(leader, encodeForward(fwdConsume, q.vh.name, q.name, c.ch.consumeRequest(s, c)))
		if err != nil {
			rc.mu.Lock()
			var tags []uint64
			if rc.sess == s {
				_, tags = rc.unbindLocked()
			}
			rc.mu.Unlock()
			sendBack(s, tags)
		}
		return err
	})
}

// onLeader runs local when this node serves q, else remote on the node
// serving it (a quorum queue's leader, a classic queue's home), again
// while they fail because q is not served where they ran or that node
// cannot be reached, until one leader failed for moveTimeout (an election
// and some; a new leader starts it again, as a request to a paused one
// may itself take that long to fail).
func (q *queue) onLeader(local func() error, remote func(leader string) error) error {
	e := q.env
	var deadline time.Time
	last := "-"
	for {
		leader := q.servingNode() // metasync.go
		if leader != last {
			last, deadline = leader, time.Now().Add(moveTimeout)
		}
		switch {
		case leader == e.node:
			if err := local(); !isNotServed(err) {
				return err
			}
		case leader != "":
			if err := remote(leader); err == nil || !retryable(err) {
				return err
			}
		}
		if time.Now().After(deadline) {
			return errorf(ResourceLocked, "quorum queue '%s' in vhost '%s' has no reachable leader; retry", q.name, q.vh.name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// consumeRequest is the payload of fwdConsume for c on session s.
func (ch *Channel) consumeRequest(s *remoteSession, c *consumer) []byte {
	ch.mu.Lock()
	global := ch.globalPrefetch
	ch.mu.Unlock()
	w := binary.BigEndian.AppendUint64(nil, s.id)
	w = appendString(w, c.tag)
	var flags byte
	if c.noAck {
		flags |= consumeNoAck
	}
	if c.exclusive {
		flags |= consumeExclusive
	}
	w = append(w, flags)
	w = binary.AppendVarint(w, c.priority)
	w = binary.AppendUvarint(w, uint64(c.prefetch))
	return binary.AppendUvarint(w, uint64(global))
}

// consumerGone reports whether c was cancelled or its channel closed.
func (ch *Channel) consumerGone(c *consumer) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.closed || c.cancelled
}

// remoteFor returns c's remote part, making it.
func (ch *Channel) remoteFor(c *consumer) *remoteConsumer {
	ch.mu.Lock()
	rc := c.remote
	if rc == nil {
		rc = &remoteConsumer{c: c, q: c.q}
		c.remote = rc
	}
	ch.mu.Unlock()
	rs := ch.env.remotes
	rs.mu.Lock()
	set := rs.byQ[c.q]
	if set == nil {
		set = make(map[*remoteConsumer]struct{})
		rs.byQ[c.q] = set
	}
	set[rc] = struct{}{}
	rs.mu.Unlock()
	return rc
}

// drop forgets rc: its consumer was cancelled or its channel closed. A
// session it was bound to stays (the channel's other consumers, its
// unacked deliveries).
func (rc *remoteConsumer) drop() {
	rc.mu.Lock()
	s, tags := rc.unbindLocked()
	rc.mu.Unlock()
	sendBack(s, tags)
	rs := rc.env().remotes
	rs.mu.Lock()
	if set := rs.byQ[rc.q]; set != nil {
		delete(set, rc)
		if len(set) == 0 {
			delete(rs.byQ, rc.q)
		}
	}
	rs.mu.Unlock()
}

// consumeRemote attaches a new consumer whose queue this node does not
// serve, through its leader.
func (ch *Channel) consumeRemote(c *consumer) error {
	rc := c.remote
	rc.mu.Lock()
	rc.moving = true
	rc.mu.Unlock()
	if err := rc.run(); err != nil {
		rc.drop()
		return err
	}
	return nil
}

// cancelRemote ends the leader's part of a cancelled consumer.
func (rc *remoteConsumer) cancel() {
	rc.mu.Lock()
	s := rc.sess
	rc.mu.Unlock()
	rc.drop()
	if s != nil && !s.broken.Load() {
		// Waited for, so that no delivery to the consumer follows the
		// client's cancel-ok (one still in flight is sent back).
		payload := appendString(binary.BigEndian.AppendUint64(nil, s.id), rc.c.tag)
		if _, err := rc.env().forwardWait(s.node, encodeForward(fwdCancel, rc.q.vh.name, rc.q.name, payload)); err != nil {
			rc.env().log.Debug("cluster: cancel a remote consumer", "queue", rc.q.name, "err", err)
		}
	}
}

// leaderMoved moves q's remote consumers bound to another node than its
// new leader.
func (e *env) leaderMoved(q *queue, leader string) {
	rs := e.remotes
	rs.mu.Lock()
	var rcs []*remoteConsumer
	for rc := range rs.byQ[q] {
		rcs = append(rcs, rc)
	}
	rs.mu.Unlock()
	for _, rc := range rcs {
		rc.mu.Lock()
		s := rc.sess
		rc.mu.Unlock()
		if s != nil && s.node != leader {
			rc.lost(s)
			// The old leader, if it still thinks it leads, would keep
			// feeding the consumer there.
			payload := appendString(binary.BigEndian.AppendUint64(nil, s.id), rc.c.tag)
			e.cluster.Forward(s.node, encodeForward(fwdCancel, q.vh.name, q.name, payload), func([]byte, error) {})
		}
	}
}

// closeRemotes ends ch's sessions (its channel closed): each leader
// returns their unacked deliveries to its queues.
func (ch *Channel) closeRemotes() {
	ch.mu.Lock()
	ss := ch.remotes
	ch.remotes = nil
	ch.mu.Unlock()
	for _, s := range ss {
		if s.broken.CompareAndSwap(false, true) {
			ch.env.remotes.forget(s)
			ch.env.sendClose(s.node, msgClose, s.id)
		}
	}
}

// remoteGet is basic.get of a quorum queue this node does not serve: the
// leader takes the message for ch's session with it.
func (ch *Channel) remoteGet(q *queue, noAck bool) (d *Delivery, err error) {
	err = q.onLeader(func() error {
		d, err = q.get(ch, noAck)
		return err
	}, func(leader string) error {
		s := ch.sessionWith(leader)
		if s == nil {
			return errorf(PreconditionFailed, "channel is closed")
		}
		payload := appendBool(binary.BigEndian.AppendUint64(nil, s.id), noAck)
		resp, err := ch.env.forwardWait(leader, encodeForward(fwdGet, q.vh.name, q.name, payload))
		if err != nil || resp == nil {
			return err // nil, nil: get-empty
		}
		r := reader{b: resp}
		if d, err = decodeDelivery(&r); err != nil {
			return internalError("get from the leader", err)
		}
		ch.deliverGetTracked(pending{q: q, seq: d.DeliveryTag, rs: s}, noAck, d)
		return nil
	})
	return d, err
}

// settleRemote sends the settlement of deliveries that came through
// sessions to their leaders, in order, one message per run of a session.
func (ch *Channel) settleRemote(ps []pending, how settleKind) {
	var cur *remoteSession
	var tags []uint64
	send := func() {
		if cur != nil && len(tags) > 0 {
			cur.send(msgSettle, encodeSettle(how, tags))
		}
	}
	for _, p := range ps {
		if p.rs != cur {
			send()
			cur, tags = p.rs, tags[:0]
		}
		tags = append(tags, p.seq)
	}
	send()
}

var errNoSession = errors.New("no session")

// purgeAnywhere is queue.purge of q, on its leader when that is another
// node (which reports the count).
func (q *queue) purgeAnywhere() (n uint32, err error) {
	if n, err = q.purge(); !isNotServed(err) {
		return n, err
	}
	err = q.onLeader(func() error {
		n, err = q.purge()
		return err
	}, func(leader string) error {
		resp, err := q.env.forwardWait(leader, encodeForward(fwdPurge, q.vh.name, q.name, nil))
		if err != nil {
			return err
		}
		r := reader{b: resp}
		n = uint32(min(r.uvarint(), 1<<32-1))
		return r.err()
	})
	return n, err
}

// markRedelivered flags a delivery the client got before. Properties
// still as stored are decoded to take x-delivery-count; ones that do not
// decode (a damaged record) go out as they are.
func markRedelivered(d *Delivery) {
	d.Redelivered = true
	p, err := d.Props()
	if err != nil {
		return
	}
	if _, ok := p.Headers["x-delivery-count"]; !ok {
		if p.Headers == nil {
			p.Headers = make(message.Table, 1)
		}
		p.Headers["x-delivery-count"] = int64(1)
		p.Flags |= message.FlagHeaders
	}
	d.Properties, d.RawProperties = p, nil
}
