package broker

import (
	"slices"
	"strings"
	"sync"

	"github.com/sluicemq/sluice/internal/access"
	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/records"
	"github.com/sluicemq/sluice/internal/store"
)

// vhost is one virtual host: its exchanges, queues and bindings.
type vhost struct {
	name string
	env  *env

	mu        sync.RWMutex
	exchanges map[string]*exchange
	queues    map[string]*queue
	// creating reserves the names of queues being stored (declare.go);
	// each channel is closed once its queue is added or given up.
	creating map[string]chan struct{}
	deleted  bool // vhosts.go: nothing may be created any more
}

func newVHost(name string, e *env) *vhost {
	vh := &vhost{name: name, env: e, exchanges: make(map[string]*exchange), queues: make(map[string]*queue),
		creating: make(map[string]chan struct{})}
	vh.exchanges[""] = newExchange("", kindDirect, true, false, false, nil)
	for _, p := range []struct{ name, kind string }{
		{"amq.direct", kindDirect}, {"amq.fanout", kindFanout}, {"amq.topic", kindTopic},
		{"amq.headers", kindHeaders}, {"amq.match", kindHeaders},
	} {
		vh.exchanges[p.name] = newExchange(p.name, p.kind, true, false, false, nil)
	}
	return vh
}

func (vh *vhost) noExchange(name string) *Error {
	return errorf(NotFound, "no exchange '%s' in vhost '%s'", name, vh.name)
}

func (vh *vhost) noQueue(name string) *Error {
	return errorf(NotFound, "no queue '%s' in vhost '%s'", name, vh.name)
}

func (vh *vhost) locked(name string) *Error {
	return errorf(ResourceLocked, "cannot obtain exclusive access to locked queue '%s' in vhost '%s'. "+
		"It could be originally declared on another connection or the exclusive property value does not match "+
		"that of the original declaration.", name, vh.name)
}

var errDefaultExchange = errorf(AccessRefused, "operation not permitted on the default exchange")

// route finds the queues a message reaches and the x-schema of its
// exchange ("" for none), looking the exchange up once, under one read
// lock, for everything a publish needs of it.
func (vh *vhost) route(msg *message.Message) (qs []*queue, schema string, err error) {
	vh.mu.RLock()
	defer vh.mu.RUnlock()
	x := vh.exchanges[msg.Exchange]
	if x == nil {
		return nil, "", vh.noExchange(msg.Exchange)
	}
	if x.internal {
		return nil, "", errorf(AccessRefused, "cannot publish to internal exchange '%s' in vhost '%s'", x.name, vh.name)
	}
	qs = vh.routeLocked(x, msg)
	x.countRouted(len(qs))
	return qs, x.schemaLocked(), nil
}

// queueFor looks a queue up for conn, enforcing exclusivity.
func (vh *vhost) queueFor(conn *Connection, name string) (*queue, error) {
	vh.mu.RLock()
	defer vh.mu.RUnlock()
	return vh.queueForLocked(conn, name)
}

func (vh *vhost) queueForLocked(conn *Connection, name string) (*queue, error) {
	q := vh.queues[name]
	if q == nil {
		return nil, vh.noQueue(name)
	}
	if q.owner != nil && q.owner != conn {
		return nil, vh.locked(name)
	}
	return q, nil
}

// topology runs fn, a change of the vhost's topology, under vh.mu. The
// store changes fn adds to its batch are deferred to the write pipeline
// under the lock and synced after it is released (a declare-ok means
// durable), so no publisher of the vhost waits for that fsync. A change
// is visible before it is durable; anything that depends on it (a publish
// routed by a new binding, a declare of a binding to a new exchange) is
// written after it through the same pipeline, so it is never durable
// without it.
func (vh *vhost) topology(fn func(b *store.Batch) error) error {
	var b store.Batch
	vh.mu.Lock()
	err := fn(&b)
	stored := err == nil && b.Len() > 0
	var shared []string
	if stored {
		shared = vh.env.sharedKeys(&b) // metasync.go
		vh.env.pipe.Defer(&b)
	}
	vh.mu.Unlock()
	if stored {
		err = vh.env.syncDefs()
		if err != nil && shared != nil {
			// Not committed by the cluster (yet): memory goes back to
			// what the store holds; a late commit reaches it as another
			// node's write would.
			vh.env.reloadMeta(shared)
		}
	}
	return err
}

// syncDefs makes the definitions deferred so far durable.
func (e *env) syncDefs() error {
	if err := e.pipe.Sync(); err != nil {
		return storeError("store definitions", err)
	}
	return nil
}

// DeclareExchange is exchange.declare. As RabbitMQ, the type is checked
// first, then the name; an existing exchange (amq.* included) is only
// checked for equivalence, and the reserved prefix refuses new ones.
func (ch *Channel) DeclareExchange(d ExchangeDecl) error {
	vh := ch.vh
	if err := CheckName("exchange", d.Name); err != nil { // names.go
		return err
	}
	if ae, ok := d.Args["alternate-exchange"].(string); ok {
		if err := CheckName("alternate exchange", ae); err != nil {
			return err
		}
	}
	if d.Passive {
		if d.Name == "" {
			return errDefaultExchange
		}
		vh.mu.RLock()
		defer vh.mu.RUnlock()
		if vh.exchanges[d.Name] == nil {
			return vh.noExchange(d.Name)
		}
		return nil
	}
	if d.Type == kindDelayed {
		if t, _ := d.Args["x-delayed-type"].(string); !validKind(t) {
			return errorf(PreconditionFailed, "Invalid argument, 'x-delayed-type' must be an existing exchange type")
		}
	} else if !validKind(d.Type) {
		return errorf(CommandInvalid, "invalid exchange type '%s'", d.Type)
	}
	if d.Name == "" {
		return errDefaultExchange
	}
	if err := ch.allowExchangeDeclare(d); err != nil { // permissions.go
		return err
	}
	var created *store.Batch
	err := vh.topology(func(b *store.Batch) error {
		err := vh.declareExchangeLocked(b, d)
		if err == nil && b.Len() > 0 && vh.env.cluster != nil {
			created = &store.Batch{Ops: slices.Clone(b.Ops)}
		}
		return err
	})
	if err != nil {
		return err
	}
	return vh.settleExchange(d, created) // metasync.go
}

func (vh *vhost) declareExchangeLocked(b *store.Batch, d ExchangeDecl) error {
	if x := vh.exchanges[d.Name]; x != nil {
		return vh.exchangeEquivalent(x, d)
	}
	if strings.HasPrefix(d.Name, "amq.") {
		return errorf(AccessRefused, "exchange name '%s' contains reserved prefix 'amq.*'", d.Name)
	}
	if err := vh.goneLocked(); err != nil {
		return err
	}
	if err := vh.checkExchangeArgsLocked(d); err != nil {
		return err
	}
	x := newExchange(d.Name, d.Type, d.Durable, d.AutoDelete, d.Internal, d.Args)
	vh.applyExchangePolicyLocked(x) // policy.go
	if d.Durable {
		v, err := records.EncodeExchangeDef(records.ExchangeDef{VHost: vh.name, Name: x.name, Type: x.kind,
			Durable: true, AutoDelete: x.autoDelete, Internal: x.internal, Args: x.args})
		if err != nil {
			return &Error{Code: PreconditionFailed, Reason: "exchange arguments: " + err.Error(), Err: err}
		}
		b.PutMeta(records.ExchangeKey(vh.name, x.name), v)
	}
	vh.exchanges[x.name] = x
	return nil
}

func (vh *vhost) exchangeEquivalent(x *exchange, d ExchangeDecl) error {
	diff := func(arg string, got, cur any) error {
		return errorf(PreconditionFailed, "inequivalent arg '%s' for exchange '%s' in vhost '%s': received '%v' but current is '%v'",
			arg, x.name, vh.name, got, cur)
	}
	switch {
	case d.Type != x.kind:
		return diff("type", d.Type, x.kind)
	case d.Durable != x.durable:
		return diff("durable", d.Durable, x.durable)
	case d.AutoDelete != x.autoDelete:
		return diff("auto_delete", d.AutoDelete, x.autoDelete)
	case d.Internal != x.internal:
		return diff("internal", d.Internal, x.internal)
	}
	return argsEquivalent("exchange", x.name, vh.name, []string{"alternate-exchange", "x-schema", "x-validation-failure"}, d.Args, x.args)
}

// DeleteExchange is exchange.delete. Deleting a missing exchange succeeds.
func (ch *Channel) DeleteExchange(name string, ifUnused bool) error {
	vh := ch.vh
	if name == "" {
		return errDefaultExchange
	}
	if strings.HasPrefix(name, "amq.") {
		return errorf(AccessRefused, "deletion of system exchange '%s' in vhost '%s' not allowed", name, vh.name)
	}
	if err := ch.allow(access.Configure, "exchange", name); err != nil {
		return err
	}
	return vh.topology(func(b *store.Batch) error {
		x := vh.exchanges[name]
		if x == nil {
			return nil
		}
		if ifUnused && len(x.bindings) > 0 {
			return errorf(PreconditionFailed, "exchange '%s' in vhost '%s' in use", name, vh.name)
		}
		vh.deleteExchangeLocked(b, x)
		return nil
	})
}

// deleteExchangeLocked removes x and its bindings both ways; sources left
// without bindings that are auto-delete go too.
func (vh *vhost) deleteExchangeLocked(b *store.Batch, x *exchange) {
	delete(vh.exchanges, x.name)
	if x.durable {
		b.DeleteMeta(records.ExchangeKey(vh.name, x.name))
	}
	for len(x.bindings) > 0 {
		vh.unbindLocked(b, x.bindings[0], false)
	}
	for len(x.inbound) > 0 {
		vh.unbindLocked(b, x.inbound[0], true)
	}
}

// unbindLocked removes a binding; with autoDelete, a source exchange left
// without bindings that is auto-delete is deleted.
func (vh *vhost) unbindLocked(b *store.Batch, bd *binding, autoDelete bool) {
	src := bd.src
	src.removeBinding(bd)
	if bindingDurable(bd) {
		b.DeleteMeta(records.BindingKey(vh.name, bd.x != nil, src.name, bd.destName(), bd.key, bd.args))
	}
	if autoDelete && src.autoDelete && len(src.bindings) == 0 && vh.exchanges[src.name] == src {
		vh.deleteExchangeLocked(b, src)
	}
}

func bindingDurable(bd *binding) bool {
	if !bd.src.durable {
		return false
	}
	if bd.q != nil {
		return bd.q.durable
	}
	return bd.x.durable
}

// BindExchange is exchange.bind: Source routes to the exchange Destination.
func (ch *Channel) BindExchange(bnd Binding) error { return ch.bind(bnd, true, false) }

// UnbindExchange is exchange.unbind. As RabbitMQ 3.10, unbinding is
// idempotent: a missing binding, source or destination succeeds.
func (ch *Channel) UnbindExchange(bnd Binding) error { return ch.bind(bnd, true, true) }

// BindQueue is queue.bind.
func (ch *Channel) BindQueue(bnd Binding) error { return ch.bind(bnd, false, false) }

// UnbindQueue is queue.unbind. Removing a binding that does not exist,
// or from a queue or an exchange that does not exist, succeeds.
func (ch *Channel) UnbindQueue(bnd Binding) error { return ch.bind(bnd, false, true) }

func (ch *Channel) bind(bnd Binding, toExchange, unbind bool) error {
	vh := ch.vh
	if bnd.Source == "" || (toExchange && bnd.Destination == "") {
		return errDefaultExchange
	}
	if err := CheckRoutingKey(bnd.Key); err != nil { // names.go
		return err
	}
	if err := ch.allowBind(bnd, toExchange); err != nil { // permissions.go
		return err
	}
	return vh.topology(func(b *store.Batch) error { return vh.bindLocked(b, ch.conn, bnd, toExchange, unbind) })
}

func (vh *vhost) bindLocked(b *store.Batch, conn *Connection, bnd Binding, toExchange, unbind bool) error {
	// As RabbitMQ: a missing source is reported first, then a missing
	// destination, then exclusivity.
	src := vh.exchanges[bnd.Source]
	if src == nil {
		if unbind {
			return nil
		}
		return vh.noExchange(bnd.Source)
	}
	var (
		q  *queue
		dx *exchange
	)
	if toExchange {
		if dx = vh.exchanges[bnd.Destination]; dx == nil {
			if unbind {
				return nil
			}
			return vh.noExchange(bnd.Destination)
		}
	} else {
		var err error
		if q, err = vh.queueForLocked(conn, bnd.Destination); err != nil {
			if unbind && CodeOf(err) == NotFound {
				return nil
			}
			return err
		}
	}
	existing := src.findBinding(q, dx, bnd.Key, bnd.Args)
	if unbind {
		if existing != nil {
			vh.unbindLocked(b, existing, true)
		}
		return nil
	}
	if existing != nil {
		return nil
	}
	if src.route == kindHeaders {
		if v, ok := validXMatch(bnd.Args); !ok {
			return errorf(PreconditionFailed, "Invalid x-match field value %s; expected all, any, all-with-x, or any-with-x", v)
		}
	}
	bd := &binding{src: src, q: q, x: dx, key: bnd.Key, args: bnd.Args}
	if bindingDurable(bd) {
		v, err := records.EncodeBindingDef(records.BindingDef{VHost: vh.name, Source: src.name, ToExchange: toExchange,
			Dest: bnd.Destination, Key: bnd.Key, Args: bnd.Args})
		if err != nil {
			return &Error{Code: PreconditionFailed, Reason: "binding arguments: " + err.Error(), Err: err}
		}
		b.PutMeta(records.BindingKey(vh.name, toExchange, src.name, bnd.Destination, bnd.Key, bnd.Args), v)
	}
	src.addBinding(bd)
	return nil
}
