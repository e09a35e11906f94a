package broker

// Queue declaration, purge and deletion: the queue side of the topology.

import (
	"strings"

	"github.com/sluicemq/sluice/internal/access"
	"github.com/sluicemq/sluice/internal/records"
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
			return ch.declareQuorum(d, opts) // quorum.go
		}
	}
	ch.env.objects.qDeclared.Add(1)
	q, created, err := vh.declareQueue(ch.conn, d, opts, true)
	switch {
	case err != nil:
		return QueueStatus{}, err
	case created:
		return QueueStatus{Name: q.name}, nil
	}
	return q.status(), nil
}

// declareQueue returns the queue d names, creating it when there is none.
// A new queue is stored with no vhost lock held: its name is reserved
// (vh.creating) while its records are synced, so a second declare of the
// name waits for the first, and the queue is seen only once it is durable.
// With limited, a new queue counts against the vhost's queue limit.
func (vh *vhost) declareQueue(conn *Connection, d QueueDecl, opts QueueOptions, limited bool) (q *queue, created bool, err error) {
	for {
		vh.mu.Lock()
		if q := vh.queues[d.Name]; q != nil {
			err := vh.existingQueueLocked(conn, q, d)
			vh.mu.Unlock()
			return q, false, err
		}
		if wait := vh.creating[d.Name]; wait != nil {
			vh.mu.Unlock()
			<-wait
			continue
		}
		if limited {
			if err := vh.env.limits.checkQueues(vh.name, d.Name, len(vh.queues)+len(vh.creating)); err != nil { // limits.go
				vh.mu.Unlock()
				return nil, false, err
			}
		}
		q, def, err := vh.newQueueLocked(d, opts)
		vh.mu.Unlock()
		if err != nil {
			return nil, false, err
		}
		if err := vh.addQueue(conn, q, def, d.Exclusive); err != errCreateLost {
			return q, true, err
		}
		// Another node created the queue first (metasync.go): look again.
	}
}

// existingQueueLocked checks a declare of an existing queue.
func (vh *vhost) existingQueueLocked(conn *Connection, q *queue, d QueueDecl) error {
	if q.owner != nil && q.owner != conn || (q.owner == nil) == d.Exclusive {
		return vh.locked(d.Name)
	}
	if err := vh.queueEquivalent(q, d); err != nil {
		return err
	}
	q.touch() // under vh.mu, so that x-expires (expireQueue) sees it
	return nil
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

// newQueueLocked makes a new queue and reserves its name; its id's
// records are deferred to the write pipeline, and a durable one's
// definition is returned in def. addQueue stores them and adds the queue.
func (vh *vhost) newQueueLocked(d QueueDecl, opts QueueOptions) (q *queue, def *store.Batch, err error) {
	if err := vh.goneLocked(); err != nil { // vhosts.go
		return nil, nil, err
	}
	if err := vh.checkQueueSchemaLocked(d.Name, opts); err != nil {
		return nil, nil, err
	}
	durable := d.Durable && !d.Exclusive
	id, err := vh.env.newQueueID(durable)
	if err != nil {
		return nil, nil, err
	}
	q = newQueue(vh, id, d.Name)
	q.durable, q.declaredDurable, q.exclusive, q.autoDelete = durable, d.Durable, d.Exclusive, d.AutoDelete
	q.args = d.Args
	q.setOpts(vh.env.policies.effectiveOptions(vh.name, q.name, q.args, opts)) // policy.go
	if durable {
		v, err := records.EncodeQueueDef(records.QueueDef{VHost: vh.name, Name: q.name, ID: id, AutoDelete: q.autoDelete, Args: q.args})
		if err != nil {
			return nil, nil, &Error{Code: PreconditionFailed, Reason: "queue arguments: " + err.Error(), Err: err}
		}
		def = &store.Batch{}
		def.PutMeta(records.QueueKey(vh.name, q.name), v)
		if vh.env.cluster != nil {
			def.PutMeta(records.QueueNodeKey(vh.name, q.name), records.EncodeQueueNode(vh.env.node)) // metasync.go
		}
	}
	vh.creating[q.name] = make(chan struct{})
	return q, def, nil
}

// addQueue stores the definition of a queue from newQueueLocked (synced,
// with the id records deferred before it) with no lock held, then adds
// the queue to the vhost and releases its name. A failure (the store, a
// vhost deleted meanwhile, an exclusive owner gone) takes its records back.
func (vh *vhost) addQueue(conn *Connection, q *queue, def *store.Batch, exclusive bool) error {
	var err error
	lost := false
	if def != nil {
		if err = vh.env.pipe.Apply(def, true); err != nil {
			err = storeError("store definitions", err)
		} else {
			lost = vh.lostCreate(def) // metasync.go
		}
	}
	vh.mu.Lock()
	close(vh.creating[q.name])
	delete(vh.creating, q.name)
	if lost {
		var b store.Batch
		b.DeleteMeta(records.QueueIDKey(q.id))
		vh.env.pipe.Defer(&b)
		vh.reloadQueueLocked(q.name)
		vh.mu.Unlock()
		return errCreateLost
	}
	if err == nil {
		err = vh.goneLocked()
	}
	if err == nil && exclusive {
		q.owner = conn
		if !conn.addExclusive(q) {
			err = errorf(ResourceLocked, "connection is closed")
		}
	}
	if err != nil {
		var b store.Batch
		if q.durable && vh.env.cluster == nil {
			// In a cluster the definition may still commit; it then
			// reaches this node as another node's would (metasync.go).
			b.DeleteMeta(records.QueueKey(vh.name, q.name))
		}
		b.DeleteMeta(records.QueueIDKey(q.id))
		vh.env.pipe.Defer(&b)
		vh.mu.Unlock()
		return err
	}
	vh.queues[q.name] = q
	vh.env.objects.qCreated.Add(1)
	vh.mu.Unlock()
	return nil
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
	return q.purgeAnywhere()
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
		return ch.deleteQuorum(q, ifUnused, ifEmpty) // quorum.go
	}
	if ifUnused || ifEmpty {
		// Another node's queue: its consumers and messages are there.
		if err := q.refuseRemote("delete it with if-unused or if-empty"); err != nil { // metasync.go
			vh.mu.Unlock()
			return 0, err
		}
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
	case ifEmpty && q.readyLenLocked() > 0:
		q.mu.Unlock()
		vh.mu.Unlock()
		return 0, errorf(PreconditionFailed, "queue '%s' in vhost '%s' is not empty", name, vh.name)
	}
	q.mu.Unlock()
	n, deleted := vh.deleteQueueLocked(q, false)
	vh.mu.Unlock()
	if deleted && q.durable {
		return n, vh.env.syncDefs()
	}
	return n, nil
}

// deleteQueueObject deletes q if it is still in the vhost (an exclusive
// queue whose connection closed).
func (vh *vhost) deleteQueueObject(q *queue) { vh.deleteQueueIf(q, false) }

// autoDeleteQueue deletes an auto-delete queue whose last consumer left,
// unless a consumer came back meanwhile.
func (vh *vhost) autoDeleteQueue(q *queue) { vh.deleteQueueIf(q, true) }

// deleteQueueIf deletes q if it is still in the vhost (and, with
// onlyIfIdle, has no consumers), syncing after the lock is released. A
// store failure has been logged by the pipeline, and the deletion's
// records stay queued for the next write.
func (vh *vhost) deleteQueueIf(q *queue, onlyIfIdle bool) {
	vh.mu.Lock()
	deleted := false
	if vh.queues[q.name] == q {
		_, deleted = vh.deleteQueueLocked(q, onlyIfIdle)
	}
	vh.mu.Unlock()
	if deleted && q.durable {
		_ = vh.env.syncDefs()
	}
}

// deleteQueueLocked removes q, its bindings and its messages, and cancels
// its consumers; it reports whether it did (with onlyIfIdle it does
// nothing if q has consumers). Its store changes are deferred: the caller
// syncs them after releasing vh.mu.
func (vh *vhost) deleteQueueLocked(q *queue, onlyIfIdle bool) (uint32, bool) {
	return vh.deleteQueueWith(q, onlyIfIdle, nil)
}

// deleteQueueWith is deleteQueueLocked with filter, when not nil, applied
// to the store changes before they are deferred.
func (vh *vhost) deleteQueueWith(q *queue, onlyIfIdle bool, filter func(*store.Batch)) (uint32, bool) {
	var b store.Batch
	q.mu.Lock()
	if q.deleted || (onlyIfIdle && len(q.consumers) > 0) {
		q.mu.Unlock()
		return 0, false
	}
	delete(vh.queues, q.name)
	vh.env.objects.qDeleted.Add(1)
	for len(q.bindings) > 0 {
		vh.unbindLocked(&b, q.bindings[0], true)
	}
	if q.durable {
		b.DeleteMeta(records.QueueKey(vh.name, q.name))
		if vh.env.cluster != nil && !q.quorum {
			b.DeleteMeta(records.QueueNodeKey(vh.name, q.name))
		}
	}
	if q.home == "" {
		b.DeleteMeta(records.QueueIDKey(q.id))
	}
	consumers, n := q.dropLocked(&b)
	if filter != nil {
		filter(&b)
	}
	vh.env.pipe.Defer(&b)
	q.mu.Unlock()
	for _, c := range consumers {
		c.ch.brokerCancel(c)
	}
	if q.owner != nil {
		q.owner.forgetExclusive(q)
	}
	return n, true
}
