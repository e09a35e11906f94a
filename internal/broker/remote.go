package broker

// Serving a quorum queue through a node that does not lead it: basic.get,
// basic.consume and their acks on a follower travel to the queue's leader
// over the cluster transport (issue 15, "any node serves any queue").
//
// A client channel on node F that gets from or consumes a quorum queue led
// by node L has a session with L (remote_follower.go): on L the session is
// a broker Channel of its own (remote_leader.go), whose consumers are real
// consumers of the queue and whose unacked deliveries are tracked as any
// channel's. So what holds for a channel holds for a session: a delivery
// unacked when the session ends (F's channel closed, the F↔L connection
// lost, L stopped leading) returns to the queue redelivered, with its
// x-delivery-count. F maps its own delivery tags to L's.
//
// Flow: L's session channel has the consumer's prefetch (and the F
// channel's global prefetch), and counts every delivery it sent against a
// window until F reports it handed to its client (msgWritten). F hands a
// delivery to its client only when F's channel has credit (prefetch, flow,
// the client's output not full), buffering the rest: at most the window
// per session, so a slow client stalls its own remote consumer only.
//
// Requests with a reply go by Cluster.Forward (encodeForward; payload
// below); one-way messages by Cluster.SendMessage, each
//
//	kind u8 | session u64 | body
//
// When a message cannot be sent, or a connection ends, the session is
// broken: both sides drop it (L requeues, F's consumers re-attach), and an
// unknown session's message is answered by closing it on the other side.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/records"
	"github.com/sluicemq/sluice/internal/store"
)

// Forwarded requests of a session (after fwdPublish, fwdDelete). Their
// payloads (after vhost and queue):
//
//	fwdGet:     session u64 | no-ack u8                     -> empty, or a delivery:
//	            ltag uvarint | seq uvarint | redelivered u8 | count uvarint | record
//	fwdConsume: session u64 | tag | flags u8 | priority varint | prefetch uvarint | global uvarint
//	fwdCancel:  session u64 | tag
//	fwdPurge:   (none)                                      -> count uvarint
const (
	fwdGet byte = iota + 3
	fwdConsume
	fwdCancel
	fwdPurge
)

// Messages. Leader to follower: msgDeliver (tag | a delivery as a get's), msgCancelled (tag: the leader ended the
// consumer), msgClosed (the leader dropped the session), msgTookBack
// (ltag uvarint: a consumer timeout took the delivery back). Follower to
// leader: msgSettle (how u8 | n uvarint | n tags uvarint), msgWritten
// (n uvarint), msgClose, msgQos (global prefetch uvarint: basic.qos
// global changed on the follower's channel).
const (
	msgDeliver byte = iota + 1
	msgCancelled
	msgClosed
	msgSettle
	msgWritten
	msgClose
	msgTookBack
	msgQos
)

const (
	consumeNoAck byte = 1 << iota
	consumeExclusive
)

// remoteWindow bounds the deliveries a leader has sent on a session and
// the follower has not yet handed to its client.
const remoteWindow = 256

// moveTimeout bounds how long a follower looks for a queue's leader (an
// election) before it refuses a get or consume, or cancels a consumer
// whose leader went away.
const moveTimeout = 10 * time.Second

// notServedReason ends the reason of ResourceLocked errors that say "ask
// the node serving it": a follower that hears it from the node it thought
// led retries with the new one.
const notServedReason = "is not served by this node"

func (q *queue) notServedError() error {
	return errorf(ResourceLocked, "queue '%s' in vhost '%s' %s", q.name, q.vh.name, notServedReason)
}

func isNotServed(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == ResourceLocked && strings.HasSuffix(e.Reason, notServedReason)
}

// retryable reports whether a forwarded request that failed may succeed on
// the queue's leader later: it was not led where it went, or the request
// did not arrive or its reply did not come back.
func retryable(err error) bool { return isNotServed(err) || CodeOf(err) == Internal }

// remotes is a broker's sessions, both sides.
type remotes struct {
	mu     sync.Mutex
	served map[servedKey]*servedSession // leader side
	byID   map[uint64]*remoteSession    // follower side
	byQ    map[*queue]map[*remoteConsumer]struct{}
	nextID uint64
}

func newRemotes() *remotes {
	return &remotes{served: make(map[servedKey]*servedSession), byID: make(map[uint64]*remoteSession),
		byQ: make(map[*queue]map[*remoteConsumer]struct{}), nextID: uint64(time.Now().UnixNano())}
}

// forwardWait sends a request to node and waits for its reply; a coded
// error of the remote broker comes back as such.
func (e *env) forwardWait(node string, body []byte) ([]byte, error) {
	type result struct {
		resp []byte
		err  error
	}
	done := make(chan result, 1)
	e.cluster.Forward(node, body, func(resp []byte, err error) { done <- result{resp, err} })
	r := <-done
	return r.resp, decodeRemoteError(r.err)
}

// AcceptMessage takes a one-way message from another node (the cluster
// transport's reader calls it, in order, and it must not block).
func (b *Broker) AcceptMessage(from string, body []byte) {
	r := reader{b: body}
	kind := r.byte()
	id := r.u64()
	if r.bad {
		b.env.log.Warn("cluster: malformed message", "from", from)
		return
	}
	switch kind {
	case msgDeliver, msgCancelled, msgClosed, msgTookBack:
		b.env.followerMessage(from, kind, id, &r) // remote_follower.go
	case msgSettle, msgWritten, msgClose, msgQos:
		b.env.leaderMessage(from, kind, id, &r) // remote_leader.go
	default:
		b.env.log.Warn("cluster: unknown message", "from", from, "kind", kind)
	}
}

// PeerDown drops the sessions with a node whose connection ended: as
// leader, their deliveries return to their queues; as follower, their
// consumers re-attach to their queues' leaders.
func (b *Broker) PeerDown(node string) {
	b.env.closeServedFrom(node)
	b.env.dropSessionsWith(node)
}

// LeaderChanged moves this node's remote consumers of a queue to its new
// leader (cluster.LeaderWatcher).
func (b *Broker) LeaderChanged(id store.QueueID, leader string) {
	if leader == "" {
		return
	}
	if q := b.queueByID(id); q != nil {
		b.env.leaderMoved(q, leader)
	}
}

// sendMessage sends kind for session id to node.
func (e *env) sendMessage(node string, kind byte, id uint64, body []byte) bool {
	m := make([]byte, 0, 9+len(body))
	m = append(m, kind)
	m = binary.BigEndian.AppendUint64(m, id)
	return e.cluster.SendMessage(node, append(m, body...))
}

// sendClose sends a session's closing message (msgClose or msgClosed),
// retrying a while when the connection's queue is full: a session whose
// other side never hears of its end would keep its messages.
func (e *env) sendClose(node string, kind byte, id uint64) {
	var try func(left int)
	try = func(left int) {
		if !e.sendMessage(node, kind, id, nil) && left > 0 {
			time.AfterFunc(100*time.Millisecond, func() { try(left - 1) })
		}
	}
	try(50)
}

// encodeDelivery is a delivery's part of msgDeliver and of a get's reply.
// The properties travel as stored when the delivery carries them so.
func encodeDelivery(w []byte, d *Delivery) ([]byte, error) {
	m := &message.Message{Exchange: d.Exchange, RoutingKey: d.RoutingKey, Properties: d.Properties, Body: d.Body}
	var rec []byte
	if d.RawProperties != nil {
		rec = append(records.AppendRecordHeadRaw(nil, m, d.RawProperties, 0), d.Body...)
	} else {
		var err error
		if rec, err = records.EncodeRecord(m, 0); err != nil {
			return nil, err
		}
	}
	w = binary.AppendUvarint(w, d.DeliveryTag)
	w = binary.AppendUvarint(w, d.seq)
	w = appendBool(w, d.Redelivered)
	w = binary.AppendUvarint(w, uint64(d.MessageCount))
	return append(w, rec...), nil
}

func decodeDelivery(r *reader) (*Delivery, error) {
	ltag := r.uvarint()
	seq := r.uvarint()
	redelivered := r.byte() != 0
	count := r.uvarint()
	if r.bad {
		return nil, errors.New("malformed delivery")
	}
	m, err := records.DecodeRecord(r.rest())
	if err != nil {
		return nil, err
	}
	return &Delivery{seq: seq, DeliveryTag: ltag, Redelivered: redelivered, Exchange: m.Exchange, RoutingKey: m.RoutingKey,
		Properties: m.Properties, Body: m.Body, MessageCount: uint32(min(count, 1<<32-1))}, nil
}

func appendBool(w []byte, v bool) []byte {
	if v {
		return append(w, 1)
	}
	return append(w, 0)
}

func appendString(w []byte, s string) []byte {
	w = binary.AppendUvarint(w, uint64(len(s)))
	return append(w, s...)
}

// reader decodes a message; bad is set by the first short or malformed
// read, after which every read returns zero.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) byte() byte {
	if r.bad || len(r.b) < 1 {
		r.bad = true
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u64() uint64 {
	if r.bad || len(r.b) < 8 {
		r.bad = true
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) uvarint() uint64 {
	if r.bad {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	r.advance(n)
	return v
}

func (r *reader) varint() int64 {
	if r.bad {
		return 0
	}
	v, n := binary.Varint(r.b)
	r.advance(n)
	return v
}

// advance skips the n bytes a varint took (n <= 0: a malformed one, whose
// value binary's decoders give as 0).
func (r *reader) advance(n int) {
	if n <= 0 {
		r.bad = true
		return
	}
	r.b = r.b[n:]
}

func (r *reader) string() string {
	n := r.uvarint()
	if r.bad || n > uint64(len(r.b)) {
		r.bad = true
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) rest() []byte {
	b := r.b
	r.b = nil
	return b
}

// err reports a malformed message.
func (r *reader) err() error {
	if r.bad {
		return fmt.Errorf("malformed forwarded request")
	}
	return nil
}
