package broker

import (
	"encoding/binary"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicemq/sluice/internal/access"
	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/records"
)

// Channel is one AMQP channel's broker state: its consumers, its delivery
// tags and unacked messages, its prefetch limits, its tx or confirm mode.
// A channel's methods are called from one goroutine (the connection's
// reader); Outlet calls come from elsewhere.
type Channel struct {
	conn *Connection
	id   uint16
	env  *env
	vh   *vhost
	out  Outlet
	// release gives back the channel's slot in its user's max-channels
	// limit (limits.go); nil when none was taken. Set before the channel
	// is shared.
	release func()
	// session: this channel is a follower channel's session with this
	// node (remote_leader.go); set before the channel is shared.
	session *servedSession

	mu             sync.Mutex
	closed         bool
	nextTag        uint64
	unacked        map[uint64]pending
	order          []uint64 // delivery tags in ascending order; may hold settled tags
	consumers      map[string]*consumer
	prefetch       int // per consumer, for consumers created later (0: none)
	globalPrefetch int // shared by the channel's consumers (0: none)
	unackedCount   int // unacked consumer deliveries, against globalPrefetch
	noAckInFlight  int // no-ack deliveries (on a session channel: all) not yet reported Written
	holdCredit     int // > 0: settling; freed credit waits for shareCredit (prefetch.go)
	kickRR         int // rotates the queue shareCredit offers freed credit first
	flowActive     bool
	mode           chanMode
	tx             txState
	reply          *replyConsumer            // direct reply-to consumer, if any
	confirmFrom    uint64                    // stats.publish at confirm.select
	remotes        map[string]*remoteSession // by leader node: sessions for quorum queues led elsewhere (remote_follower.go)
	one            [1]pending                // takeLocked's result for a single tag

	stats        msgCounters   // stats.go
	confirmsSent atomic.Uint64 // acks and nacks sent to the publisher
}

type chanMode uint8

const (
	modeNone chanMode = iota
	modeTx
	modeConfirm
)

// pending is one unacked delivery.
type pending struct {
	q   *queue
	seq uint64
	c   *consumer // nil for basic.get
	tag uint64
	gen uint16 // the message's delivery count when it went out
	// rs: the delivery came through this session with the queue's
	// leader, and seq is the leader's delivery tag (remote_follower.go).
	rs *remoteSession
	// stale: the queue took the delivery back (consumer timeout); settling
	// it later is accepted and ignored.
	stale bool
}

func newChannel(conn *Connection, id uint16, out Outlet) *Channel {
	return &Channel{
		conn: conn, id: id, env: conn.vh.env, vh: conn.vh, out: out,
		unacked: make(map[uint64]pending), consumers: make(map[string]*consumer), flowActive: true,
	}
}

// hasCredit reports whether c may take a delivery now.
func (ch *Channel) hasCredit(c *consumer) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.creditLocked(c)
}

func (ch *Channel) creditLocked(c *consumer) bool {
	if ch.closed || !ch.flowActive || c.cancelled || ch.holdCredit > 0 || ch.conn.outputFull.Load() {
		return false
	}
	// As RabbitMQ's limiter: while the channel-wide limit is full, no-ack
	// consumers wait too (their deliveries do not count toward it).
	if ch.globalPrefetch > 0 && ch.unackedCount >= ch.globalPrefetch {
		return false
	}
	if c.noAck || ch.session != nil {
		// A session's every delivery waits in the follower until its
		// client can take it: the window bounds them (remote.go).
		if ch.noAckInFlight >= ch.outWindow() {
			return false
		}
		if c.noAck {
			return true
		}
	}
	return c.prefetch == 0 || c.unacked < c.prefetch
}

// outWindow bounds the deliveries handed to the Outlet and not yet
// reported Written (no-ack ones; on a session channel, all).
func (ch *Channel) outWindow() int {
	if ch.session != nil {
		return remoteWindow
	}
	return ch.env.window
}

// deliver gives d to consumer c if it still has credit: a delivery tag, an
// unacked record, the outlet. It reports false when the credit is gone.
func (ch *Channel) deliver(c *consumer, q *queue, seq uint64, gen uint16, d *Delivery) bool {
	return ch.deliverTracked(c, pending{q: q, seq: seq, c: c, gen: gen}, d)
}

// deliverTracked is deliver, p the unacked record to keep.
func (ch *Channel) deliverTracked(c *consumer, p pending, d *Delivery) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if !ch.creditLocked(c) {
		return false
	}
	ch.nextTag++
	d.DeliveryTag = ch.nextTag
	d.ConsumerTag = c.tag
	if c.noAck || ch.session != nil {
		ch.noAckInFlight++
	}
	if !c.noAck {
		ch.trackLocked(d.DeliveryTag, p)
		c.unacked++
		ch.unackedCount++
	}
	if c.remote != nil {
		c.remote.note(d) // remote_follower.go
	}
	ch.countDelivery(d, c.noAck, false)
	ch.out.Deliver(d)
	return true
}

// deliverGet gives d, taken by basic.get, its delivery tag.
func (ch *Channel) deliverGet(q *queue, seq uint64, gen uint16, noAck bool, d *Delivery) {
	ch.deliverGetTracked(pending{q: q, seq: seq, gen: gen}, noAck, d)
}

// deliverGetTracked is deliverGet, p the unacked record to keep.
func (ch *Channel) deliverGetTracked(p pending, noAck bool, d *Delivery) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.nextTag++
	d.DeliveryTag = ch.nextTag
	if !noAck {
		ch.trackLocked(d.DeliveryTag, p)
	}
	ch.countDelivery(d, noAck, true)
}

// expireDelivery marks a delivery its queue took back (consumer timeout):
// its credit is released and a later ack or nack of it is ignored. Called
// with the queue's lock held.
func (ch *Channel) expireDelivery(tag uint64) {
	ch.mu.Lock()
	p, ok := ch.unacked[tag]
	if ok && !p.stale {
		ch.releaseCreditLocked(p)
		p.c = nil
		p.stale = true
		ch.unacked[tag] = p
		if ch.session != nil {
			ch.session.tookBack(tag) // remote_leader.go: the follower frees its credit too
		}
	}
	ch.mu.Unlock()
}

func (ch *Channel) trackLocked(tag uint64, p pending) {
	p.tag = tag
	ch.unacked[tag] = p
	ch.order = append(ch.order, tag)
}

// takeLocked removes the deliveries an ack or nack names: tag alone, or
// every tag up to it (multiple), or all (multiple with tag 0). As RabbitMQ,
// the tag itself must be unacked.
func (ch *Channel) takeLocked(tag uint64, multiple bool) ([]pending, error) {
	if multiple && tag == 0 {
		return ch.takeUpToLocked(^uint64(0)), nil
	}
	if _, ok := ch.unacked[tag]; !ok {
		return nil, errorf(PreconditionFailed, "unknown delivery tag %d", tag)
	}
	if multiple {
		return ch.takeUpToLocked(tag), nil
	}
	p := ch.unacked[tag]
	delete(ch.unacked, tag)
	ch.releaseCreditLocked(p)
	ch.compactOrderLocked()
	// A single ack is the common case: its slice is the channel's own,
	// valid until the next take (the channel's methods run one at a time).
	ch.one[0] = p
	return ch.one[:], nil
}

// compactOrderLocked drops settled tags from order once they are most of it.
func (ch *Channel) compactOrderLocked() {
	if len(ch.order) > 64 && len(ch.order) > 2*len(ch.unacked) {
		ch.order = slices.DeleteFunc(ch.order, func(t uint64) bool { _, ok := ch.unacked[t]; return !ok })
	}
}

func (ch *Channel) takeUpToLocked(tag uint64) []pending {
	n := sort.Search(len(ch.order), func(i int) bool { return ch.order[i] > tag })
	var ps []pending
	for _, t := range ch.order[:n] {
		if p, ok := ch.unacked[t]; ok {
			delete(ch.unacked, t)
			ch.releaseCreditLocked(p)
			ps = append(ps, p)
		}
	}
	ch.order = slices.Delete(ch.order, 0, n)
	return ps
}

func (ch *Channel) releaseCreditLocked(p pending) {
	if p.c != nil {
		p.c.unacked--
		ch.unackedCount--
	}
}

// restoreLocked puts taken deliveries back (a rolled-back transaction).
func (ch *Channel) restoreLocked(ps []pending) {
	for _, p := range ps {
		ch.unacked[p.tag] = p
		ch.order = append(ch.order, p.tag)
		if p.c != nil {
			p.c.unacked++
			ch.unackedCount++
		}
	}
	slices.Sort(ch.order)
	ch.order = slices.Compact(ch.order)
}

// Ack acknowledges deliveries (multiple: every tag up to tag; tag 0 with
// multiple: all). An unknown tag is PreconditionFailed
// "unknown delivery tag 7".
func (ch *Channel) Ack(tag uint64, multiple bool) error {
	return ch.settleTags(tag, multiple, settleAck)
}

// Nack returns or discards deliveries (basic.nack; basic.reject is a Nack
// of one). Requeued messages go back to their original place in the queue
// and are delivered again with Redelivered set.
func (ch *Channel) Nack(tag uint64, multiple, requeue bool) error {
	how := settleDiscard
	if requeue {
		how = settleRequeue
	}
	return ch.settleTags(tag, multiple, how)
}

func (ch *Channel) settleTags(tag uint64, multiple bool, how settleKind) error {
	ch.mu.Lock()
	ps, err := ch.takeLocked(tag, multiple)
	if err != nil {
		ch.mu.Unlock()
		return err
	}
	if ch.mode == modeTx {
		ch.tx.settles = append(ch.tx.settles, txSettle{how: how, ps: slices.Clone(ps)})
		ch.mu.Unlock()
		return nil
	}
	ch.mu.Unlock()
	ch.countSettled(ps, how)
	ch.settle(ps, how)
	return nil
}

// settle hands settled deliveries to their queues, then lets every queue
// this channel consumes from use the credit the settlement freed.
func (ch *Channel) settle(ps []pending, how settleKind) {
	if len(ps) == 1 && !ps[0].stale && ps[0].rs == nil && !ch.sharesCredit() {
		// One delivery, one queue: no grouping needed.
		one := [1]settled{{seq: ps[0].seq, gen: ps[0].gen}}
		done := [1]*queue{ps[0].q}
		done[0].settle(one[:], how, &ch.conn.deaths)
		ch.kick(done[:])
		return
	}
	byQ := make(map[*queue][]settled, 1)
	var qs []*queue
	var remote []pending
	for _, p := range ps {
		if p.stale {
			continue
		}
		if p.rs != nil {
			remote = append(remote, p)
			continue
		}
		if _, ok := byQ[p.q]; !ok {
			qs = append(qs, p.q)
		}
		byQ[p.q] = append(byQ[p.q], settled{seq: p.seq, gen: p.gen})
	}
	if remote != nil {
		ch.settleRemote(remote, how) // remote_follower.go
	}
	if ch.sharesCredit() {
		ch.settleShared(qs, byQ, how) // prefetch.go
		return
	}
	for _, q := range qs {
		q.settle(byQ[q], how, &ch.conn.deaths)
	}
	ch.kick(qs)
}

// kick dispatches the queues of the channel's consumers (except those in
// done, which just dispatched) and hands remote consumers what they hold.
func (ch *Channel) kick(done []*queue) {
	qs, rcs := ch.consumed(done)
	for _, q := range qs {
		q.dispatch()
	}
	for _, rc := range rcs {
		rc.flush()
	}
}

// consumed returns the queues the channel's consumers take from, except
// those in skip, and its remote consumers.
func (ch *Channel) consumed(skip []*queue) (qs []*queue, rcs []*remoteConsumer) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	for _, c := range ch.consumers {
		if c.remote != nil {
			rcs = append(rcs, c.remote)
		}
		if c.q != nil && !slices.Contains(skip, c.q) && !slices.Contains(qs, c.q) {
			qs = append(qs, c.q)
		}
	}
	return qs, rcs
}

// Recover requeues every unacked message of the channel (basic.recover
// with requeue true); they are delivered again with Redelivered set. As
// RabbitMQ, requeue false is NotImplemented "requeue=false".
func (ch *Channel) Recover(requeue bool) error {
	if !requeue {
		return errorf(NotImplemented, "requeue=false")
	}
	ch.mu.Lock()
	ps := ch.takeUpToLocked(^uint64(0))
	ch.mu.Unlock()
	ch.settle(ps, settleRequeue)
	return nil
}

// Undeliverable takes back a delivery the front door could not send (a
// field the wire format cannot encode): it is rejected without requeue, so
// it is dead-lettered when its queue has a dead-letter exchange and dropped
// otherwise; requeued, it would come straight back. Unlike Nack it may be
// called from any goroutine and is never part of a transaction. A no-ack
// delivery is not tracked: there is nothing to take back.
func (ch *Channel) Undeliverable(tag uint64) {
	ch.mu.Lock()
	p, ok := ch.unacked[tag]
	if !ok || p.stale {
		ch.mu.Unlock()
		return
	}
	delete(ch.unacked, tag)
	ch.releaseCreditLocked(p)
	ch.mu.Unlock()
	ch.settle([]pending{p}, settleDiscard)
}

// Written reports that n no-ack deliveries handed to the Outlet reached the
// socket, returning their share of Config.OutletWindow.
func (ch *Channel) Written(n int) {
	ch.mu.Lock()
	full := ch.noAckInFlight >= ch.outWindow()
	ch.noAckInFlight = max(0, ch.noAckInFlight-n)
	ch.mu.Unlock()
	if full {
		ch.kick(nil)
	}
}

// SetFlow pauses (false) or resumes deliveries to the channel's consumers
// (channel.flow from the client).
func (ch *Channel) SetFlow(active bool) {
	ch.mu.Lock()
	was := ch.flowActive
	ch.flowActive = active
	ch.mu.Unlock()
	if active && !was {
		ch.kick(nil)
	}
}

// Qos sets prefetch limits: per consumer (global false, RabbitMQ's
// meaning: applies to consumers created after it) or shared by the channel.
// A non-zero prefetch size is NotImplemented, as RabbitMQ answers.
func (ch *Channel) Qos(prefetchSize uint32, prefetchCount uint16, global bool) error {
	if prefetchSize != 0 {
		return errorf(NotImplemented, "prefetch_size!=0 (%d)", prefetchSize)
	}
	ch.mu.Lock()
	if global {
		ch.globalPrefetch = int(prefetchCount)
	} else {
		ch.prefetch = int(prefetchCount)
	}
	var ss []*remoteSession
	if global {
		for _, s := range ch.remotes {
			ss = append(ss, s)
		}
	}
	ch.mu.Unlock()
	for _, s := range ss {
		// The leaders' sessions hold the same limit (remote.go).
		s.send(msgQos, binary.AppendUvarint(nil, uint64(prefetchCount)))
	}
	if global {
		ch.kick(nil)
	}
	return nil
}

// Get takes one message (basic.get); nil with no error means get-empty.
func (ch *Channel) Get(queueName string, noAck bool) (*Delivery, error) {
	if err := ch.allow(access.Read, "queue", queueName); err != nil {
		return nil, err
	}
	ch.conn.waitPublished()
	// What those publishes brought this channel's consumers goes out before
	// the get's answer, as with RabbitMQ, whose queue hands a publish to its
	// waiting consumer's channel before that channel asks another queue for
	// a message; a client that gets while its consumer settles (a reject
	// whose dead letter it then gets) is not left waiting on a dispatcher.
	qs, _ := ch.consumed(nil)
	for _, q := range qs {
		q.dispatchPending()
	}
	q, err := ch.vh.queueFor(ch.conn, queueName)
	if err != nil {
		return nil, err
	}
	d, err := q.get(ch, noAck)
	if isNotServed(err) && ch.session == nil {
		// A quorum queue led elsewhere: its leader takes the message.
		d, err = ch.remoteGet(q, noAck) // remote_follower.go
	}
	if d == nil && err == nil {
		ch.countGetEmpty(q)
	}
	return d, err
}

// Publish routes a message. done is called exactly once, from any
// goroutine, when the broker has taken the message: after its fsync for a
// persistent message routed to a durable queue, once it is in its queues
// otherwise; a non-nil error means it could not be stored (the publisher
// gets basic.nack). routed is false when no queue took the message (the
// publisher gets basic.return when it set mandatory); done is then called
// before Publish returns. A returned error is a channel or connection error
// (unknown exchange: NotFound) and done is not called. The broker keeps
// msg: the caller must not change it afterwards.
func (ch *Channel) Publish(msg *message.Message, mandatory bool, done func(error)) (routed bool, err error) {
	return ch.publish(msg, nil, mandatory, done)
}

// PublishDraft is Publish of d's message, whose record d already holds;
// the caller must not change d afterwards.
func (ch *Channel) PublishDraft(d *Draft, mandatory bool, done func(error)) (routed bool, err error) {
	d.seal()
	return ch.publish(&d.Msg, d, mandatory, done)
}

// publish is Publish; d, when not nil, is the draft msg belongs to.
func (ch *Channel) publish(msg *message.Message, d *Draft, mandatory bool, done func(error)) (routed bool, err error) {
	if done == nil {
		done = func(error) {}
	}
	if err := ch.allow(access.Write, "exchange", msg.Exchange); err != nil { // permissions.go
		return false, err
	}
	if err := CheckRoutingKey(msg.RoutingKey); err != nil { // names.go: a key no consumer's frame could carry
		return false, err
	}
	if err := ch.checkProperties(msg); err != nil { // senders.go
		return false, err
	}
	if err := ch.rewriteReplyTo(msg); err != nil {
		return false, err
	}
	if ok, handled := ch.publishReply(msg); handled {
		ch.countPublished(ok, mandatory)
		done(nil)
		return ok, nil
	}
	if delay := publishDelay(msg); delay > 0 {
		ch.countPublished(true, mandatory)
		// Routed when due; as RabbitMQ's delayed-message plugin, a
		// delayed message counts as routed.
		if handled, routed, err := ch.admitDelayed(msg, done); handled { // validate.go
			return routed, err
		}
		return true, ch.publishDelayed(msg, delay, done)
	}
	targets, xs, err := ch.vh.route(msg)
	if err != nil {
		return false, err
	}
	if stripBCC(msg) && d != nil {
		d.recode = true
	}
	ch.countPublished(len(targets) > 0, mandatory)
	if handled, routed, err := ch.admit(msg, xs, &targets, &done); handled { // validate.go
		return routed, err
	}
	if len(targets) == 0 {
		ch.mu.Lock()
		if ch.mode == modeTx { // returned at commit, if mandatory
			ch.holdLocked(nil, msg, mandatory, done)
			ch.mu.Unlock()
			return true, nil
		}
		ch.mu.Unlock()
		done(nil)
		return false, nil
	}
	if local, remote := splitServed(targets); remote != nil { // quorum.go
		if ch.inTx() {
			done(errorf(NotImplemented, "a transaction cannot publish to quorum queue '%s' led by another node", remote[0].name))
			return true, nil
		}
		parts := 0
		if len(local) > 0 {
			parts = 1
		}
		joined, err := ch.forward(msg, remote, done, parts)
		if err != nil {
			return false, err
		}
		if len(local) == 0 {
			return true, nil
		}
		targets, done = local, joined
	}
	req, err := newDraftReq(msg, d, targets, done, ch.env.now())
	if err != nil {
		return false, err
	}
	ch.mu.Lock()
	if ch.mode == modeTx {
		ch.holdLocked(req, msg, mandatory, nil)
		ch.mu.Unlock()
		return true, nil
	}
	ch.mu.Unlock()
	return true, ch.submit(req)
}

func newPublishReq(msg *message.Message, targets []*queue, done func(error), now time.Time) (*publishReq, error) {
	return newDraftReq(msg, nil, targets, done, now)
}

// newDraftReq is newPublishReq of msg, which belongs to d when d is not
// nil: the request then takes d's record.
func newDraftReq(msg *message.Message, d *Draft, targets []*queue, done func(error), now time.Time) (*publishReq, error) {
	if err := refuseRemoteTargets(targets); err != nil { // metasync.go
		return nil, err
	}
	ttl, err := messageTTL(msg)
	if err != nil {
		return nil, err
	}
	pubMs := now.UnixMilli()
	rec := d.record(pubMs)
	if rec == nil {
		if rec, err = records.EncodeRecord(msg, pubMs); err != nil {
			return nil, &Error{Code: InvalidArgument, Reason: err.Error(), Err: err}
		}
	}
	req := &publishReq{rec: rec, targets: targets, done: done,
		meta: records.Index{Persistent: msg.Persistent(), Size: uint32(min(len(msg.Body), 1<<32-1)), PubMs: pubMs, TTL: ttl}}
	if msg.Properties.Flags&message.FlagPriority != 0 {
		req.meta.Prio = msg.Properties.Priority
	}
	if msg.Persistent() {
		for _, q := range targets {
			req.sync = req.sync || q.durable
		}
	}
	for _, q := range targets {
		if q.quorum {
			// As RabbitMQ, a quorum queue keeps every message, and its
			// confirm waits for a majority.
			req.meta.Persistent = true
			req.sync = true
		}
	}
	return req, nil
}

// messageTTL parses the expiration property (ms as a decimal string), -1
// when absent.
func messageTTL(msg *message.Message) (int64, error) {
	p := &msg.Properties
	if p.Flags&message.FlagExpiration == 0 {
		return -1, nil
	}
	n, err := strconv.ParseInt(p.Expiration, 10, 64)
	switch {
	case err != nil:
		return 0, errorf(PreconditionFailed, "invalid expiration <<\"%s\">>: no_integer", p.Expiration)
	case n < 0:
		return 0, errorf(PreconditionFailed, "invalid expiration <<\"%s\">>: {value_negative,%d}", p.Expiration, n)
	}
	return n, nil
}

// submit hands req to the write pipeline, tracking it in the connection's
// publish progress.
func (ch *Channel) submit(req *publishReq) error {
	conn, done := ch.conn, req.done
	conn.publishStarted()
	req.done = func(err error) {
		conn.publishFinished()
		done(err)
	}
	if err := ch.env.submit(req); err != nil {
		conn.publishFinished()
		return err
	}
	return nil
}

// SelectConfirm notes confirm mode (a transactional channel cannot switch:
// PreconditionFailed).
func (ch *Channel) SelectConfirm() error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.mode == modeTx {
		return errorf(PreconditionFailed, "cannot switch from tx to confirm mode")
	}
	if ch.mode != modeConfirm {
		ch.confirmFrom = ch.stats.publish.Load()
	}
	ch.mode = modeConfirm
	return nil
}

// Close cancels the channel's consumers and returns its unacked messages
// to their queues.
func (ch *Channel) Close() {
	ch.mu.Lock()
	if ch.closed {
		ch.mu.Unlock()
		return
	}
	ch.closed = true
	ch.env.objects.chanClosed.Add(1)
	if ch.release != nil {
		ch.release()
	}
	cs := make([]*consumer, 0, len(ch.consumers))
	for _, c := range ch.consumers {
		c.cancelled = true
		cs = append(cs, c)
	}
	ch.consumers = make(map[string]*consumer)
	ps := ch.takeUpToLocked(^uint64(0))
	tx := ch.tx
	ch.tx = txState{}
	// Uncommitted acks and nacks never happened: their deliveries return
	// to their queues with the rest.
	ps = append(ps, tx.pendings()...)
	ch.mu.Unlock()

	ch.dropReply()
	tx.discard()
	for _, c := range cs {
		if c.remote != nil {
			c.remote.drop()
		}
		if c.q != nil {
			ch.detach(c)
		}
	}
	ch.settle(ps, settleRequeue)
	ch.closeRemotes() // remote_follower.go: the leaders requeue the rest
	ch.conn.forgetChannel(ch)
}
