package broker

// Queue declaration, purge and deletion: the queue side of the topology.

import (
	"strings"

	"github.com/sluicemq/sluice/internal/access"
	"github.com/sluicemq/sluice/internal/store"
)

// DeclareQueue is queue.declare.
func (ch *Channel) DeclareQueue(d QueueDecl) (QueueStatus, error) {
	vh := ch.vh
	if strings.HasPrefix(d.Name, replyToQueue) {
		// As RabbitMQ, every declare of a reply-to name is passive; the
		// pseudo-queue exists (with one consumer) while its channel does.
		if d.Name == replyToQueue || ch.env.reply.lookup(strings.TrimPrefix(d.Name, replyToPrefix)) != nil {
			return QueueStatus{Name: d.Name, Consumers: 1}, nil
		}
		return QueueStatus{}, vh.noQueue(d.Name)
	}
	if err := CheckName("queue", d.Name); err != nil { // names.go
		return QueueStatus{}, err
	}
	serverNamed := d.Name == ""
	if serverNamed {
		if d.Passive {
			return QueueStatus{}, vh.noQueue(d.Name)
		}
		d.Name = randomName("amq.gen-")
	} else if !d.Passive && strings.HasPrefix(d.Name, "amq.") {
		return QueueStatus{}, errorf(AccessRefused, "queue name '%s' contains reserved prefix 'amq.*'", d.Name)
	}
	if !d.Passive {
		if err := ch.allowQueueDeclare(d); err != nil { // permissions.go
			return QueueStatus{}, err
		}
	}
	ch.conn.waitPublished()
	if d.Passive {
		q, err := vh.queueFor(ch.conn, d.Name)
		if err != nil {
			return QueueStatus{}, err
		}
		q.touch() // a passive declare is a use: it renews x-expires
		return q.status(), nil
	}
	opts, err := parseQueueArgs(d.Args, d.Name, vh.name)
	if err != nil {
		return QueueStatus{}, err
	}
	if opts.QueueType == "quorum" && ch.env.cluster != nil {
		if err := checkQuorumDecl(d, vh.name); err != nil {
			return QueueStatus{}, err
		}
		vh.mu.RLock()
		exists := vh.queues[d.Name] != nil
		vh.mu.RUnlock()
		if !exists {
			ch.env.objects.qDeclared.Add(1)
			return ch.declareQuorum(d) // quorum.go
		}
	}
	ch.env.objects.qDeclared.Add(1)
	vh.mu.Lock()
	defer vh.mu.Unlock()
	if q := vh.queues[d.Name]; q != nil {
		if q.owner != nil && q.owner != ch.conn || (q.owner == nil) == d.Exclusive {
			return QueueStatus{}, vh.locked(d.Name)
		}
		if err := vh.queueEquivalent(q, d); err != nil {
			return QueueStatus{}, err
		}
		q.touch()
		return q.status(), nil
	}
	if err := vh.env.limits.checkQueues(vh.name, d.Name, len(vh.queues)); err != nil { // limits.go
		return QueueStatus{}, err
	}
	q, err := vh.createQueueLocked(ch.conn, d, opts)
	if err != nil {
		return QueueStatus{}, err
	}
	return QueueStatus{Name: q.name}, nil
}

func (q *queue) status() QueueStatus {
	ready, consumers := q.counts()
	return QueueStatus{Name: q.name, Messages: ready, Consumers: consumers}
}

func (vh *vhost) queueEquivalent(q *queue, d QueueDecl) error {
	diff := func(arg string, got, cur bool) error {
		return errorf(PreconditionFailed, "inequivalent arg '%s' for queue '%s' in vhost '%s': received '%v' but current is '%v'",
			arg, q.name, vh.name, got, cur)
	}
	// As RabbitMQ, durability is compared as stored: an exclusive queue is
	// never durable.
	switch {
	case (d.Durable && !d.Exclusive) != q.durable:
		return diff("durable", d.Durable && !d.Exclusive, q.durable)
	case d.AutoDelete != q.autoDelete:
		return diff("auto_delete", d.AutoDelete, q.autoDelete)
	}
	return argsEquivalent("queue", q.name, vh.name, equivalenceArgs, d.Args, q.args)
}

// createQueueLocked makes a new queue; a durable (and not exclusive) one is
// recorded in the store first.
func (vh *vhost) createQueueLocked(conn *Connection, d QueueDecl, opts QueueOptions) (*queue, error) {
	if err := vh.goneLocked(); err != nil { // vhosts.go
		return nil, err
	}
	if err := vh.checkQueueSchemaLocked(d.Name, opts); err != nil {
		return nil, err
	}
	durable := d.Durable && !d.Exclusive
	id, err := vh.env.newQueueID(durable)
	if err != nil {
		return nil, err
	}
	q := newQueue(vh, id, d.Name)
	q.durable, q.declaredDurable, q.exclusive, q.autoDelete = durable, d.Durable, d.Exclusive, d.AutoDelete
	q.args = d.Args
	q.setOpts(vh.env.policies.effectiveOptions(vh.name, q.name, q.args, opts)) // policy.go
	if durable {
		v, err := encodeQueueDef(queueDef{VHost: vh.name, Name: q.name, ID: id, AutoDelete: q.autoDelete, Args: q.args})
		if err != nil {
			return nil, &Error{Code: PreconditionFailed, Reason: "queue arguments: " + err.Error(), Err: err}
		}
		var b store.Batch
		b.PutMeta(queueKey(vh.name, q.name), v)
		if err := vh.apply(&b); err != nil {
			return nil, err
		}
	}
	if d.Exclusive {
		q.owner = conn
		if !conn.addExclusive(q) {
			var b store.Batch
			b.DeleteMeta(queueIDKey(id))
			_ = vh.apply(&b)
			return nil, errorf(ResourceLocked, "connection is closed")
		}
	}
	vh.queues[q.name] = q
	vh.env.objects.qCreated.Add(1)
	return q, nil
}

// PurgeQueue is queue.purge: it removes the ready messages (not the unacked
// ones) and returns how many.
func (ch *Channel) PurgeQueue(name string) (uint32, error) {
	if err := ch.allow(access.Read, "queue", name); err != nil {
		return 0, err
	}
	ch.conn.waitPublished()
	q, err := ch.vh.queueFor(ch.conn, name)
	if err != nil {
		return 0, err
	}
	return q.purge()
}

// DeleteQueue is queue.delete; it returns the number of ready messages
// deleted. Deleting a missing queue succeeds with 0, as RabbitMQ 3.x.
func (ch *Channel) DeleteQueue(name string, ifUnused, ifEmpty bool) (uint32, error) {
	if err := ch.allow(access.Configure, "queue", name); err != nil {
		return 0, err
	}
	ch.conn.waitPublished()
	vh := ch.vh
	vh.mu.Lock()
	q := vh.queues[name]
	if q == nil {
		vh.mu.Unlock()
		return 0, nil
	}
	if q.quorum {
		vh.mu.Unlock()
		return 0, errorf(NotImplemented, "deleting quorum queue '%s' in vhost '%s' is not supported yet", name, vh.name)
	}
	if q.owner != nil && q.owner != ch.conn {
		vh.mu.Unlock()
		return 0, vh.locked(name)
	}
	q.mu.Lock()
	switch {
	case ifUnused && len(q.consumers) > 0:
		q.mu.Unlock()
		vh.mu.Unlock()
		return 0, errorf(PreconditionFailed, "queue '%s' in vhost '%s' in use", name, vh.name)
	case ifEmpty && q.ready.len() > 0:
		q.mu.Unlock()
		vh.mu.Unlock()
		return 0, errorf(PreconditionFailed, "queue '%s' in vhost '%s' is not empty", name, vh.name)
	}
	q.mu.Unlock()
	n, err := vh.deleteQueueLocked(q, false)
	vh.mu.Unlock()
	return n, err
}

// deleteQueueObject deletes q if it is still in the vhost (an exclusive
// queue whose connection closed).
func (vh *vhost) deleteQueueObject(q *queue) {
	vh.mu.Lock()
	defer vh.mu.Unlock()
	if vh.queues[q.name] == q {
		_, _ = vh.deleteQueueLocked(q, false)
	}
}

// autoDeleteQueue deletes an auto-delete queue whose last consumer left,
// unless a consumer came back meanwhile.
func (vh *vhost) autoDeleteQueue(q *queue) {
	vh.mu.Lock()
	defer vh.mu.Unlock()
	if vh.queues[q.name] == q {
		_, _ = vh.deleteQueueLocked(q, true)
	}
}

// deleteQueueLocked removes q, its bindings and its messages, and cancels
// its consumers. With onlyIfIdle it does nothing if q has consumers.
func (vh *vhost) deleteQueueLocked(q *queue, onlyIfIdle bool) (uint32, error) {
	var b store.Batch
	q.mu.Lock()
	if q.deleted || (onlyIfIdle && len(q.consumers) > 0) {
		q.mu.Unlock()
		return 0, nil
	}
	delete(vh.queues, q.name)
	vh.env.objects.qDeleted.Add(1)
	for len(q.bindings) > 0 {
		vh.unbindLocked(&b, q.bindings[0], true)
	}
	if q.durable {
		b.DeleteMeta(queueKey(vh.name, q.name))
	}
	b.DeleteMeta(queueIDKey(q.id))
	consumers, n := q.dropLocked(&b)
	err := vh.env.st.Apply(&b, q.durable)
	q.mu.Unlock()
	for _, c := range consumers {
		c.ch.brokerCancel(c)
	}
	if q.owner != nil {
		q.owner.forgetExclusive(q)
	}
	if err != nil {
		return n, internalError("delete queue", err)
	}
	return n, nil
}
