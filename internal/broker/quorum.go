package broker

// Quorum queues in a cluster (x-queue-type: quorum with Config.Cluster
// set). The queue's store writes go through a Raft group (the store the
// broker was opened on replicates writes to the queue's id); this file is
// the broker's side: declaring one, defining it on every member, and
// serving it only on the node that leads its group.
//
// Every member holds the queue object, its definition and (in its local
// store) its messages. Only the serving node (the group's leader, once it
// has applied everything committed before its term) delivers, takes
// publishes and writes: Serving(true) rebuilds the queue's index from the
// local store as a restart does (recoverMessages), so unacked messages
// come back redelivered with their delivery count; Serving(false) drops
// the in-memory index and moves the consumers to the new leader. A
// publish, get, consume or purge of a quorum queue this node does not
// serve goes to its leader (forward below, remote*.go).

import (
	"context"
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

// Cluster is what the broker needs of the cluster layer (internal/cluster,
// wired by cmd/sluice). nil: a single node, where x-queue-type quorum is
// accepted and behaves as a classic queue.
type Cluster interface {
	// QueueID returns the id of a replicated queue: the same on every
	// node for one vhost and name, so concurrent declarations meet.
	QueueID(vhost, name string) store.QueueID
	// CreateQueue starts the queue's group with groupSize members (0: the
	// default, x-quorum-initial-group-size) and commits its definition,
	// which reaches every node's Broker.DefineQueue (this node's before
	// CreateQueue returns).
	CreateQueue(ctx context.Context, id store.QueueID, def []byte, groupSize int) error
	// AddMember makes node a member of a replicated queue's group and
	// RemoveMember makes it stop being one (members.go).
	AddMember(ctx context.Context, id store.QueueID, node string) error
	RemoveMember(ctx context.Context, id store.QueueID, node string) error
	// AddNode and RemoveNode change the cluster's node list (members.go).
	AddNode(ctx context.Context, name, addr string) error
	RemoveNode(ctx context.Context, name string) error
	// DeleteQueue deletes a replicated queue this node leads, on every
	// member; this node's QueueDeleted has run when it returns.
	DeleteQueue(ctx context.Context, id store.QueueID) error
	// QueueStatus describes a replicated queue's group.
	QueueStatus(id store.QueueID) (ReplicaStatus, bool)
	// Nodes lists the cluster's nodes.
	Nodes() []NodeStatus
	// Replicated reports whether id is a replicated queue's.
	Replicated(id store.QueueID) bool
	// Leader names the node leading a replicated queue ("" when unknown).
	Leader(id store.QueueID) string
	// Forward sends a request to another node's Broker.AcceptForward and
	// calls done with its reply (or a transport error or timeout).
	Forward(node string, body []byte, done func(resp []byte, err error))
	// SendMessage sends a one-way message to another node's
	// Broker.AcceptMessage without blocking; false: it was dropped (the
	// node is not connected or too far behind). remote.go
	SendMessage(node string, body []byte) bool
}

// ReplicaStatus is where a quorum queue lives.
type ReplicaStatus struct {
	Leader  string
	Members []string
	Online  []string // the members this node is connected to (itself included)
}

// NodeStatus is one cluster node as this node sees it.
type NodeStatus struct {
	Name    string
	Running bool
	// MetadataLeader: the node leads the cluster's metadata group, as
	// this node last heard.
	MetadataLeader bool
}

// createQuorumTimeout bounds a quorum queue's declaration: its group's
// first election and the commit of its definition.
const createQuorumTimeout = 10 * time.Second

// checkQuorumDecl refuses what RabbitMQ refuses for a quorum queue.
func checkQuorumDecl(d QueueDecl, vhost string) error {
	bad := func(prop string) error {
		return errorf(PreconditionFailed, "invalid property '%s' for queue '%s' in vhost '%s'", prop, d.Name, vhost)
	}
	switch {
	case d.Exclusive:
		return bad("exclusive")
	case d.AutoDelete:
		return bad("auto-delete")
	case !d.Durable:
		return bad("non-durable")
	}
	return nil
}

// declareQuorum creates a quorum queue through the cluster; the queue
// object appears when its definition applies here (DefineQueue).
func (ch *Channel) declareQuorum(d QueueDecl, opts QueueOptions) (QueueStatus, error) {
	vh := ch.vh
	cl := ch.env.cluster
	id := cl.QueueID(vh.name, d.Name)
	def, err := records.EncodeQueueDef(records.QueueDef{VHost: vh.name, Name: d.Name, ID: id, Args: d.Args})
	if err != nil {
		return QueueStatus{}, &Error{Code: PreconditionFailed, Reason: "queue arguments: " + err.Error(), Err: err}
	}
	ctx, cancel := context.WithTimeout(context.Background(), createQuorumTimeout)
	defer cancel()
	if err := cl.CreateQueue(ctx, id, def, int(max(opts.QuorumInitialGroupSize, 0))); err != nil {
		return QueueStatus{}, internalError("create quorum queue", err)
	}
	q, err := vh.queueFor(ch.conn, d.Name)
	if err != nil {
		return QueueStatus{}, err
	}
	// Declared at the same time on another node, whose definition applied
	// first: this declaration must match it.
	if err := vh.queueEquivalent(q, d); err != nil {
		return QueueStatus{}, err
	}
	return q.status(), nil
}

// DefineQueue creates a quorum queue from its replicated definition
// (cluster.Handler). Idempotent: a queue that exists is left alone.
func (b *Broker) DefineQueue(id store.QueueID, def []byte) error {
	d, err := records.DecodeQueueDef(def)
	if err != nil {
		return fmt.Errorf("define quorum queue: %w", err)
	}
	b.vhMu.RLock()
	vh := b.vhosts[d.VHost]
	b.vhMu.RUnlock()
	if vh == nil {
		if b.holdDefinition(d.VHost, id, def) { // metasync.go
			return nil
		}
		return b.DefineQueue(id, def)
	}
	opts, err := parseQueueArgs(d.Args, d.Name, d.VHost)
	if err != nil {
		return fmt.Errorf("define quorum queue %q: %w", d.Name, err)
	}
	return vh.topology(func(batch *store.Batch) error {
		if q := vh.queues[d.Name]; q != nil {
			if q.id != id {
				b.env.log.Warn("quorum queue declared twice; keeping the first", "queue", d.Name, "vhost", d.VHost)
			}
			return nil
		}
		batch.PutMeta(records.QueueKey(vh.name, d.Name), def)
		q := newQueue(vh, id, d.Name)
		q.durable, q.declaredDurable, q.args, q.quorum = true, true, d.Args, true
		q.setOpts(vh.env.policies.effectiveOptions(vh.name, q.name, q.args, opts))
		vh.queues[q.name] = q
		vh.env.objects.qCreated.Add(1)
		return nil
	})
}

// Serving starts or stops serving a quorum queue on this node
// (cluster.Handler).
func (b *Broker) Serving(id store.QueueID, serving bool) {
	q := b.queueByID(id)
	if q == nil {
		b.env.log.Warn("serving an unknown quorum queue", "id", fmt.Sprintf("%x", uint64(id)))
		return
	}
	if !serving {
		q.mu.Lock()
		q.serving.Store(false)
		q.resetIndexLocked()
		// Consumers here would receive nothing: a client's moves to the
		// new leader (remote_follower.go), a session's is cancelled, and
		// its follower moves it.
		consumers := q.consumers
		q.consumers = nil
		q.exclusiveC = false
		q.mu.Unlock()
		for _, c := range consumers {
			if c.ch.session != nil {
				c.ch.brokerCancel(c)
			} else {
				c.ch.remoteFor(c).moveAway()
			}
		}
		b.env.log.Info("quorum queue led elsewhere now", "queue", q.name, "vhost", q.vh.name)
		return
	}
	// Rebuild and serve under one hold of q.mu, so no reader sees a half
	// built index; the cleanup is written after (it waits for a commit).
	var batch store.Batch
	q.mu.Lock()
	q.resetIndexLocked()
	if err := q.rebuildLocked(&batch); err != nil { // recover.go
		q.mu.Unlock()
		b.env.log.Error("quorum queue: rebuild from the replicated log", "queue", q.name, "err", err)
		return
	}
	q.serving.Store(true)
	q.dispatchLocked()
	q.mu.Unlock()
	if err := q.env.st.Apply(&batch, true); err != nil {
		b.env.log.Warn("quorum queue: write the rebuild's cleanup", "queue", q.name, "err", err)
	}
	b.env.log.Info("serving quorum queue", "queue", q.name, "vhost", q.vh.name)
}

// resetIndexLocked forgets the queue's messages (not its consumers) and
// returns how many were ready.
func (q *queue) resetIndexLocked() int {
	q.indexGen++ // a read in flight is void (read.go)
	es := q.ready.takeAll()
	for _, e := range es {
		if e.flags&entryCached != 0 {
			q.env.cache.drop(cacheKey{q.id, e.seq})
		}
	}
	q.unacked = make(map[uint64]entry)
	q.delayed = make(map[uint64]retryWait)
	q.held = make(map[uint64]entry)
	q.timeouts = make(map[uint64]tracked)
	q.unackedSeqs = heap[uint64]{}
	return len(es) + len(q.reading)
}

// servesHere reports whether this node may deliver and write the queue:
// always for a classic queue, only on the leader for a quorum queue.
func (q *queue) servesHere() bool { return q.home == "" && (!q.quorum || q.serving.Load()) }

// replicatedCount is how many messages a quorum queue holds in this
// node's copy, for the API of a member that does not serve it (it keeps no
// in-memory index). It is read from the local store's index, at most once
// a second. Messages unacked on the leader count as ready: they would be,
// were this node to take over.
type replicatedCount struct {
	mu sync.Mutex
	n  int
	at time.Time
}

func (c *replicatedCount) get(q *queue) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if !c.at.IsZero() && now.Sub(c.at) < time.Second {
		return c.n
	}
	floor, err := q.env.st.Floor(q.id)
	if err != nil {
		return c.n
	}
	n := 0
	if err := q.env.st.ScanIndex(q.id, floor, func(uint64, []byte) bool { n++; return true }); err != nil && !errors.Is(err, store.ErrNotFound) {
		return c.n
	}
	c.n, c.at = n, now
	return n
}

// Replica is a quorum queue's replication status; ok is false for a
// classic queue or a single node.
func (b *Broker) Replica(vhost, name string) (ReplicaStatus, bool) {
	if b.env.cluster == nil {
		return ReplicaStatus{}, false
	}
	b.vhMu.RLock()
	vh := b.vhosts[vhost]
	b.vhMu.RUnlock()
	if vh == nil {
		return ReplicaStatus{}, false
	}
	q, err := vh.queueFor(nil, name)
	if err != nil || !q.quorum {
		return ReplicaStatus{}, false
	}
	return b.env.cluster.QueueStatus(q.id)
}

// ClusterNodes lists the cluster's nodes (nil for a single node).
func (b *Broker) ClusterNodes() []NodeStatus {
	if b.env.cluster == nil {
		return nil
	}
	return b.env.cluster.Nodes()
}

// A publish routed to quorum queues led elsewhere goes to each one's
// leader (forward), which publishes it to that queue alone
// (AcceptForward); the publisher's confirm waits for every part. A
// queue.delete on another node than the leader goes there the same way.
// A forwarded request is
//
//	kind u8 | vhost (uvarint length, bytes) | queue (same) | payload
//
// where a publish's payload is the message record and a deletion's is one
// byte of flags (if-unused 1, if-empty 2). Each publish part is confirmed
// on its own, so a message routed to several queues is not atomic across
// them, as RabbitMQ's confirms are per queue.

const (
	fwdPublish byte = 1
	fwdDelete  byte = 2
)

const (
	delIfUnused byte = 1 << iota
	delIfEmpty
)

func encodeForward(kind byte, vhost, queue string, payload []byte) []byte {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen16+len(vhost)+len(queue)+len(payload))
	b = append(b, kind)
	b = binary.AppendUvarint(b, uint64(len(vhost)))
	b = append(b, vhost...)
	b = binary.AppendUvarint(b, uint64(len(queue)))
	b = append(b, queue...)
	return append(b, payload...)
}

func decodeForward(b []byte) (kind byte, vhost, queue string, payload []byte, err error) {
	if len(b) == 0 {
		return 0, "", "", nil, fmt.Errorf("empty forwarded request")
	}
	kind, b = b[0], b[1:]
	next := func() (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return "", false
		}
		v := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return v, true
	}
	var ok1, ok2 bool
	vhost, ok1 = next()
	queue, ok2 = next()
	if !ok1 || !ok2 {
		return 0, "", "", nil, fmt.Errorf("malformed forwarded request")
	}
	return kind, vhost, queue, b, nil
}

// forward sends msg to the leaders of the remote targets; done gets the
// first error once every part has answered (parts more: the caller's
// local part, which calls the returned function too).
func (ch *Channel) forward(msg *message.Message, remote []*queue, done func(error), parts int) (func(error), error) {
	return ch.env.forwardPublish(msg, remote, done, parts)
}

func (e *env) forwardPublish(msg *message.Message, remote []*queue, done func(error), parts int) (func(error), error) {
	rec, err := records.EncodeRecord(msg, e.now().UnixMilli())
	if err != nil {
		return nil, &Error{Code: InvalidArgument, Reason: err.Error(), Err: err}
	}
	j := &joinDone{left: len(remote) + parts, done: done}
	for _, q := range remote {
		leader := q.servingNode() // metasync.go
		if leader == "" {
			j.one(errorf(ResourceError, "quorum queue '%s' in vhost '%s' has no leader", q.name, q.vh.name))
			continue
		}
		e.cluster.Forward(leader, encodeForward(fwdPublish, q.vh.name, q.name, rec), func(_ []byte, err error) { j.one(err) })
	}
	return j.one, nil
}

// AcceptForward publishes a message another node forwarded to a quorum
// queue this node serves, or deletes the queue; reply gets the outcome
// once it is committed. It does not block on the commit (the transport
// reads the next request).
func (b *Broker) AcceptForward(from string, body []byte, respond func([]byte, error)) {
	reply := func(err error) { respond(nil, err) }
	kind, vhost, name, rec, err := decodeForward(body)
	if err != nil {
		reply(err)
		return
	}
	b.vhMu.RLock()
	vh := b.vhosts[vhost]
	b.vhMu.RUnlock()
	if vh == nil {
		reply(fmt.Errorf("no vhost %q", vhost))
		return
	}
	q, err := vh.queueFor(nil, name)
	if err != nil {
		reply(encodeRemoteError(err))
		return
	}
	if kind >= fwdGet {
		b.env.acceptSession(from, kind, vh, q, rec, respond) // remote_leader.go
		return
	}
	if !q.servesHere() {
		reply(fmt.Errorf("quorum queue %q is not led here", name))
		return
	}
	if kind == fwdDelete && len(rec) == 1 {
		go func() {
			_, err := deleteServedQuorum(q, rec[0]&delIfUnused != 0, rec[0]&delIfEmpty != 0)
			reply(encodeRemoteError(err))
		}()
		return
	}
	if kind != fwdPublish {
		reply(fmt.Errorf("unknown forwarded request %d", kind))
		return
	}
	msg, err := records.DecodeRecord(rec)
	if err != nil {
		reply(err)
		return
	}
	req, err := newPublishReq(msg, []*queue{q}, reply, b.env.now())
	if err != nil {
		reply(err)
		return
	}
	if err := b.env.submit(req); err != nil {
		reply(err)
	}
}

// deleteQuorum is queue.delete of a quorum queue: through its group, so
// that every member deletes it. The leader checks if-unused and if-empty
// (it holds the consumers and the messages); another node forwards the
// request there and reports 0 messages deleted (the count is the
// leader's).
func (ch *Channel) deleteQuorum(q *queue, ifUnused, ifEmpty bool) (uint32, error) {
	if q.servesHere() {
		return deleteServedQuorum(q, ifUnused, ifEmpty)
	}
	leader := ch.env.cluster.Leader(q.id)
	if leader == "" {
		return 0, errorf(ResourceLocked, "quorum queue '%s' in vhost '%s' has no leader yet; retry", q.name, q.vh.name)
	}
	var flags byte
	if ifUnused {
		flags |= delIfUnused
	}
	if ifEmpty {
		flags |= delIfEmpty
	}
	_, err := ch.env.forwardWait(leader, encodeForward(fwdDelete, q.vh.name, q.name, []byte{flags}))
	return 0, err
}

// deleteServedQuorum deletes a quorum queue this node serves.
func deleteServedQuorum(q *queue, ifUnused, ifEmpty bool) (uint32, error) {
	q.mu.Lock()
	n := q.ready.len()
	inUse := len(q.consumers) > 0
	q.mu.Unlock()
	switch {
	case ifUnused && inUse:
		return 0, errorf(PreconditionFailed, "queue '%s' in vhost '%s' in use", q.name, q.vh.name)
	case ifEmpty && n > 0:
		return 0, errorf(PreconditionFailed, "queue '%s' in vhost '%s' is not empty", q.name, q.vh.name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), createQuorumTimeout)
	defer cancel()
	if err := q.env.cluster.DeleteQueue(ctx, q.id); err != nil {
		return 0, internalError("delete quorum queue", err)
	}
	return uint32(min(n, 1<<32-1)), nil
}

// QueueDeleted removes a quorum queue whose deletion applied here
// (cluster.Handler); the cluster has dropped its messages.
func (b *Broker) QueueDeleted(id store.QueueID) {
	if q := b.queueByID(id); q != nil {
		q.vh.deleteQueueObject(q)
	}
}

// A forwarded request's error crosses the transport as text; its Code
// goes with it ("broker code 4: reason"), so that the requesting node
// answers its client with the leader's code and reason.
const remoteCodeMark = "broker code "

func encodeRemoteError(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s%d: %s", remoteCodeMark, CodeOf(err), err.Error())
}

func decodeRemoteError(err error) error {
	if err == nil {
		return nil
	}
	text := err.Error()
	if i := strings.Index(text, remoteCodeMark); i >= 0 {
		var code Code
		rest := text[i+len(remoteCodeMark):]
		if k, _ := fmt.Sscanf(rest, "%d:", &code); k == 1 {
			if j := strings.Index(rest, ": "); j >= 0 {
				return &Error{Code: code, Reason: rest[j+2:], Err: err}
			}
		}
	}
	return internalError("forward to the leader", err)
}

// splitServed returns the targets this node serves and the quorum queues
// it does not.
func splitServed(targets []*queue) (local, remote []*queue) {
	for i, q := range targets {
		if q.servesHere() {
			if remote != nil {
				local = append(local, q)
			}
			continue
		}
		if remote == nil {
			local = append([]*queue(nil), targets[:i]...)
		}
		remote = append(remote, q)
	}
	if remote == nil {
		return targets, nil
	}
	return local, remote
}

func (ch *Channel) inTx() bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.mode == modeTx
}
