package broker

// Shared metadata in a cluster. The store the broker writes through sends
// the shared metadata keys (records.SharingOf: vhosts, users,
// permissions, exchanges, bindings, classic queue definitions and their
// placement, policies, schemas, user and vhost limits) to the cluster's
// metadata group; every node applies them to its own store. This file is
// the broker's side:
//
//   - MetaChanged reloads what another node's entries changed, key by
//     key, with the recovery code (recover.go), so the in-memory state
//     is what this node's Open would build from its store;
//   - a classic queue declared on another node is known here with its
//     home node (queue.home): listed, declared passively, routed to (a
//     publish goes to its home over the cluster transport, as to a
//     quorum queue's leader), but not consumed, read or purged here;
//   - exchanges and queues are created first-writer-wins: the metadata
//     group applies a creation only where the key is absent or holds the
//     same value, at apply, the same on every node. A declare that lost
//     finds the winner's definition in its store after its write
//     returned (lostCreate), reloads it and is checked against it as a
//     declare of an existing one is: 406 when inequivalent.

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sluicemq/sluice/internal/records"
	"github.com/sluicemq/sluice/internal/store"
)

// errCreateLost says another node created the queue first: look again.
var errCreateLost = errors.New("created first on another node")

// MetaChanged makes the in-memory state match the store for keys: shared
// metadata keys whose values the cluster's metadata group changed
// (cluster.MetaHandler). Every key is read back from the store, so a key
// told twice or out of order ends the same.
//
// Keys are reloaded containers first (vhosts, then users and what refers
// to them, exchanges and queues, then bindings), so that a batch of keys
// in any order — a metadata snapshot's, in key order — builds what an
// Open would.
func (b *Broker) MetaChanged(keys []string) {
	keys = slices.Clone(keys)
	slices.SortStableFunc(keys, func(a, b string) int { return reloadRank(a) - reloadRank(b) })
	for _, key := range keys {
		if err := b.reloadKey(key); err != nil {
			b.env.log.Warn("cluster: reload shared metadata", "key", key, "err", err)
		}
	}
}

// reloadRank orders keys for MetaChanged.
func reloadRank(key string) int {
	for i, prefix := range []string{records.MetaVHost, records.MetaUser, records.MetaPermission, records.MetaPolicy,
		records.MetaSchema, records.MetaLimit, records.MetaExchange, records.MetaQueue, records.MetaQueueNode, records.MetaBinding} {
		if strings.HasPrefix(key, prefix) {
			return i
		}
	}
	return 100
}

func (b *Broker) reloadKey(key string) error {
	v, err := b.env.st.GetMeta(key)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	present := err == nil
	cut := func(prefix string) (vhost, name string) {
		vhost, name, _ = strings.Cut(strings.TrimPrefix(key, prefix), "\x00")
		return vhost, name
	}
	switch {
	case strings.HasPrefix(key, records.MetaVHost):
		b.reloadVHost(strings.TrimPrefix(key, records.MetaVHost), present)
	case strings.HasPrefix(key, records.MetaUser):
		return b.users.reload(strings.TrimPrefix(key, records.MetaUser), v, present)
	case strings.HasPrefix(key, records.MetaPermission):
		b.users.permGen.Add(1) // connections reread their permissions (permissions.go)
	case strings.HasPrefix(key, records.MetaExchange):
		vhost, name := cut(records.MetaExchange)
		if vh := b.vhost(vhost); vh != nil {
			vh.mu.Lock()
			defer vh.mu.Unlock()
			return vh.reloadExchangeLocked(name, v, present)
		}
	case strings.HasPrefix(key, records.MetaBinding):
		if vh := b.vhost(strings.SplitN(strings.TrimPrefix(key, records.MetaBinding), "\x00", 2)[0]); vh != nil {
			vh.mu.Lock()
			defer vh.mu.Unlock()
			return vh.reloadBindingLocked(key, v, present)
		}
	case strings.HasPrefix(key, records.MetaQueue):
		b.reloadQueue(cut(records.MetaQueue))
	case strings.HasPrefix(key, records.MetaQueueNode):
		b.reloadQueue(cut(records.MetaQueueNode))
	case strings.HasPrefix(key, records.MetaPolicy):
		return b.reloadPolicy(key, v, present)
	case strings.HasPrefix(key, records.MetaSchema):
		vhost, name := cut(records.MetaSchema)
		return b.reloadSchema(vhost, name, v, present)
	case strings.HasPrefix(key, records.MetaLimit):
		return b.limits.reload(key, v, present)
	}
	return nil
}

// keepLocal drops the shared metadata ops from b: what a reload writes is
// the node's own part of a change (a deleted classic queue's messages and
// id record), the shared keys being as the log says already.
func keepLocal(b *store.Batch) {
	kept := b.Ops[:0]
	for _, op := range b.Ops {
		if (op.Kind == store.OpPutMeta || op.Kind == store.OpDeleteMeta) && records.SharingOf(op.Key) != records.NodeLocal {
			continue
		}
		kept = append(kept, op)
	}
	b.Ops = kept
}

// sharedKeys lists the shared metadata keys b writes (nil outside a
// cluster).
func (e *env) sharedKeys(b *store.Batch) []string {
	if e.cluster == nil {
		return nil
	}
	var keys []string
	for _, op := range b.Ops {
		if (op.Kind == store.OpPutMeta || op.Kind == store.OpDeleteMeta) && records.SharingOf(op.Key) != records.NodeLocal {
			keys = append(keys, op.Key)
		}
	}
	return keys
}

// lostCreate reports whether a creation b wrote (an exchange's or a
// queue's definition) is not what the store holds now that the write
// returned: another node's came first in the metadata log.
func (vh *vhost) lostCreate(b *store.Batch) bool {
	if vh.env.cluster == nil {
		return false
	}
	for _, op := range b.Ops {
		if op.Kind != store.OpPutMeta || records.SharingOf(op.Key) != records.SharedCreate {
			continue
		}
		if v, err := vh.env.st.GetMeta(op.Key); err != nil || !bytes.Equal(v, op.Value) {
			return true
		}
	}
	return false
}

// placement names the node holding the classic queue name of vh when it
// is another node ("" when it is this one, or there is no cluster).
func (vh *vhost) placement(name string) string {
	if vh.env.cluster == nil {
		return ""
	}
	v, err := vh.env.st.GetMeta(records.QueueNodeKey(vh.name, name))
	if err != nil {
		return ""
	}
	node, err := records.DecodeQueueNode(v)
	if err != nil {
		// Taken as another node's: then nothing here touches the
		// messages of an id that may be one of this store's.
		vh.env.log.Warn("cluster: unreadable queue placement", "queue", name, "err", err)
		return "(unknown)"
	}
	if node == vh.env.node {
		return ""
	}
	return node
}

// servingNode names the node a publish to q goes to when this node does
// not serve it: its home, or its group's leader.
func (q *queue) servingNode() string {
	if q.home != "" {
		return q.home
	}
	return q.env.cluster.Leader(q.id)
}

// refuseRemote refuses what only a classic queue's home node does.
func (q *queue) refuseRemote(what string) error {
	if q.home == "" {
		return nil
	}
	return errorf(ResourceLocked, "queue '%s' in vhost '%s' is on node %s; %s there", q.name, q.vh.name, q.home, what)
}

// refuseRemoteTargets refuses a write to another node's queue: a client's
// publish forwards it there (Channel.forward), and so does a dead letter,
// a delayed message or a move (env.move), before the write is made; it
// must never be written here under that node's queue id.
func refuseRemoteTargets(targets []*queue) error {
	for _, q := range targets {
		if q.home != "" {
			return errorf(ResourceLocked, "queue '%s' in vhost '%s' is on node %s: dead letters, delayed messages and moves reach it from that node only",
				q.name, q.vh.name, q.home)
		}
	}
	return nil
}

// reloadVHost adds or removes a vhost as its record says. A removed
// vhost's queues and exchanges go from memory (this node's queues'
// messages from its store); its other records are deleted by the same
// entries as on the node that deleted it.
func (b *Broker) reloadVHost(name string, present bool) {
	b.vhMu.Lock()
	vh := b.vhosts[name]
	var held []heldDef
	switch {
	case present && vh == nil:
		b.vhosts[name] = newVHost(name, b.env)
		held = b.held[name]
		delete(b.held, name)
	case !present && vh != nil && name != "/":
		delete(b.vhosts, name)
	default:
		vh = nil
	}
	b.vhMu.Unlock()
	for _, h := range held {
		if err := b.DefineQueue(h.id, h.def); err != nil {
			b.env.log.Warn("cluster: define a quorum queue held for its vhost", "vhost", name, "err", err)
		}
	}
	if vh == nil || present {
		return
	}
	vh.mu.Lock()
	vh.deleted = true
	for _, q := range vh.queues {
		vh.dropQueueLocked(q)
	}
	clear(vh.exchanges)
	vh.mu.Unlock()
	b.users.permGen.Add(1)
	if fn := b.vhostGone.Load(); fn != nil {
		(*fn)(name)
	}
}

// OnVHostGone sets what is done when another node's deletion of a vhost
// applies here: cmd/sluice closes the vhost's connections, as the HTTP
// API does on the node that deleted it. Users deleted and permissions
// revoked elsewhere need nothing more: as here, the connections' checkers
// read them again (permGen) and refuse what they no longer allow.
func (b *Broker) OnVHostGone(fn func(vhost string)) { b.vhostGone.Store(&fn) }

// dropQueueLocked removes q from memory with what deleteQueueLocked
// removes, writing only this node's part.
func (vh *vhost) dropQueueLocked(q *queue) {
	if q.quorum {
		return // its group deletes it (quorum.go)
	}
	vh.deleteQueueWith(q, false, keepLocal)
}

// reloadExchangeLocked makes the exchange name match its record (v, or
// none): a new one is made as Open makes it, with its stored bindings; a
// different one (this node's that lost its creation) is replaced.
func (vh *vhost) reloadExchangeLocked(name string, v []byte, present bool) error {
	cur := vh.exchanges[name]
	var batch store.Batch // deleting one writes shared keys only: dropped
	if !present {
		if cur != nil && cur.durable {
			vh.deleteExchangeLocked(&batch, cur)
		}
		return nil
	}
	d, err := records.DecodeExchangeDef(v)
	if err != nil {
		return err
	}
	if cur != nil {
		if cur.durable && cur.kind == d.Type && cur.autoDelete == d.AutoDelete && cur.internal == d.Internal &&
			argsEqual(cur.args, d.Args) {
			return nil
		}
		vh.deleteExchangeLocked(&batch, cur)
	}
	x := recoverExchange(d) // recover.go
	vh.applyExchangePolicyLocked(x)
	vh.exchanges[name] = x
	return vh.recoverBindingsLocked(func(bd records.BindingDef) bool {
		return bd.Source == name || bd.ToExchange && bd.Dest == name
	})
}

// argsEqual compares two argument tables by their stored encoding.
func argsEqual(a, b map[string]any) bool {
	ea, err1 := records.EncodeExchangeDef(records.ExchangeDef{Args: a})
	eb, err2 := records.EncodeExchangeDef(records.ExchangeDef{Args: b})
	return err1 == nil && err2 == nil && bytes.Equal(ea, eb)
}

// recoverBindingsLocked adds the stored bindings of vh that match.
func (vh *vhost) recoverBindingsLocked(match func(records.BindingDef) bool) error {
	return scanDefs(vh.env.st, records.MetaBinding+vh.name+"\x00", records.DecodeBindingDef, func(d records.BindingDef) {
		if match(d) {
			vh.recoverBindingLocked(d) // recover.go
		}
	})
}

// reloadBindingLocked adds the binding of key, or removes it.
func (vh *vhost) reloadBindingLocked(key string, v []byte, present bool) error {
	if present {
		d, err := records.DecodeBindingDef(v)
		if err != nil {
			return err
		}
		vh.recoverBindingLocked(d)
		return nil
	}
	for _, x := range vh.exchanges {
		for _, bd := range x.bindings {
			if bindingDurable(bd) && records.BindingKey(vh.name, bd.x != nil, x.name, bd.destName(), bd.key, bd.args) == key {
				var batch store.Batch
				vh.unbindLocked(&batch, bd, false)
				return nil // nothing of this node's to write
			}
		}
	}
	return nil
}

// reloadQueue makes the classic queue name of vhost match its definition
// and placement (quorum queues follow their own groups).
func (b *Broker) reloadQueue(vhost, name string) {
	if vh := b.vhost(vhost); vh != nil {
		vh.mu.Lock()
		q := vh.reloadQueueLocked(name)
		vh.mu.Unlock()
		if q != nil {
			if err := q.recoverMessages(); err != nil { // recover.go
				b.env.log.Warn("cluster: recover a queue defined by a replayed entry", "queue", name, "err", err)
			}
		}
	}
}

// reloadQueueLocked is reloadQueue under vh.mu; it returns a queue of
// this node that is new here (its messages are the caller's to recover).
func (vh *vhost) reloadQueueLocked(name string) (recover *queue) {
	cur := vh.queues[name]
	if cur != nil && cur.quorum {
		return nil
	}
	v, err := vh.env.st.GetMeta(records.QueueKey(vh.name, name))
	if err != nil {
		if cur != nil && cur.durable && errors.Is(err, store.ErrNotFound) {
			vh.dropQueueLocked(cur)
		}
		return nil
	}
	d, err := records.DecodeQueueDef(v)
	if err != nil || vh.env.cluster != nil && vh.env.cluster.Replicated(d.ID) {
		return nil
	}
	q := vh.recoverQueue(d) // recover.go
	if cur != nil {
		if cur.id == q.id && cur.home == q.home {
			return nil
		}
		if !cur.durable {
			// An exclusive or transient queue of this node (those are
			// not shared) took the name first: it stays.
			vh.env.log.Warn("cluster: another node's queue has the name of a queue here that is not durable; keeping this one",
				"queue", name, "vhost", vh.name, "node", q.home)
			return nil
		}
		vh.dropQueueLocked(cur)
	}
	vh.queues[name] = q
	vh.env.objects.qCreated.Add(1)
	if err := vh.recoverBindingsLocked(func(bd records.BindingDef) bool { return !bd.ToExchange && bd.Dest == name }); err != nil {
		vh.env.log.Warn("cluster: reload a queue's bindings", "queue", name, "err", err)
	}
	if q.home == "" {
		return q
	}
	return nil
}

// reload sets or removes one user as its record says.
func (db *userDB) reload(name string, v []byte, present bool) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	defer db.permGen.Add(1)
	if !present {
		delete(db.users, name)
		db.verifier.Forget(name) // as DeleteUser does
		return nil
	}
	u, err := records.DecodeUserDef(v)
	if err != nil {
		return err
	}
	db.users[u.Name] = u
	return nil
}

// reload sets or removes one limit as its record says. A lowered limit
// leaves the connections and queues over it, as SetLimit does.
func (db *limitsDB) reload(key string, v []byte, present bool) error {
	scope, owner, name, err := parseLimitKey(key)
	if err != nil {
		return err
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if !present {
		db.deleteLocked(scope, owner, name)
		return nil
	}
	n, _, err := records.DecodeLimit(v)
	if err != nil {
		return fmt.Errorf("limit record %q: %w", key, err)
	}
	db.setLocked(scope, owner, name, n)
	return nil
}

// reloadPolicy sets or removes one policy as its record says and
// reapplies its vhost's policies.
func (b *Broker) reloadPolicy(key string, v []byte, present bool) error {
	rest := strings.TrimPrefix(key, records.MetaPolicy)
	if rest == "" {
		return nil
	}
	operator := rest[0] == 'o'
	vhost, name, _ := strings.Cut(rest[1:], "\x00")
	r := b.env.policies
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	if present {
		p, err := decodePolicy(v)
		if err != nil {
			return err
		}
		cp, err := compilePolicy(p)
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.putLocked(cp)
		r.mu.Unlock()
	} else {
		r.mu.Lock()
		delete(r.policies[vhost], mapKey(operator, name))
		r.mu.Unlock()
	}
	if vh := b.vhost(vhost); vh != nil {
		vh.reapplyPolicies()
	}
	return nil
}

// reloadSchema sets or removes one schema as its record says.
func (b *Broker) reloadSchema(vhost, name string, v []byte, present bool) error {
	r := b.env.schemas
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	var old *registeredSchema
	if present {
		d, err := records.DecodeSchemaDef(v)
		if err != nil {
			return err
		}
		s, err := r.cache.Acquire(d.Doc)
		if err != nil {
			b.env.log.Warn("cluster: a shared schema does not compile here", "vhost", vhost, "schema", name, "err", err)
		}
		r.mu.Lock()
		old = r.putLocked(vhost, name, &registeredSchema{doc: d.Doc, compiled: s})
		r.mu.Unlock()
	} else {
		r.mu.Lock()
		old = r.schemas[vhost][name]
		delete(r.schemas[vhost], name)
		r.mu.Unlock()
	}
	if old != nil {
		r.cache.Release(old.compiled)
	}
	return nil
}

// settleExchange checks, in a cluster, a declare that created exchange
// d.Name (its write in created) against what the metadata log kept: the
// winner's definition when another node created it first, reloaded here,
// then compared as a declare of an existing exchange is.
func (vh *vhost) settleExchange(d ExchangeDecl, created *store.Batch) error {
	if created == nil || !vh.lostCreate(created) {
		return nil
	}
	vh.env.reloadMeta([]string{records.ExchangeKey(vh.name, d.Name)})
	vh.mu.RLock()
	defer vh.mu.RUnlock()
	x := vh.exchanges[d.Name]
	if x == nil {
		return errorf(ResourceError, "exchange '%s' in vhost '%s' was deleted on another node meanwhile", d.Name, vh.name)
	}
	return vh.exchangeEquivalent(x, d)
}

// heldDef is a quorum queue definition that applied before its vhost's
// record did: the two come through different groups, so a lagging node
// may see them in either order.
type heldDef struct {
	id  store.QueueID
	def []byte
}

// holdDefinition keeps a quorum queue's definition until vhost exists
// here (reloadVHost defines it then); false when it exists by now.
func (b *Broker) holdDefinition(vhost string, id store.QueueID, def []byte) bool {
	b.vhMu.Lock()
	defer b.vhMu.Unlock()
	if b.vhosts[vhost] != nil {
		return false
	}
	if b.held == nil {
		b.held = make(map[string][]heldDef)
	}
	b.held[vhost] = append(b.held[vhost], heldDef{id, slices.Clone(def)})
	return true
}

// lookupLocalQueue is lookupQueue for the operator's reads and writes of
// a queue's messages: another node's queue has none here (its id may be
// one of this store's own queues'), so those are refused.
func (b *Broker) lookupLocalQueue(vhostName, name string) (*queue, error) {
	q, err := b.lookupQueue(vhostName, name)
	if err != nil {
		return nil, err
	}
	if err := q.refuseRemote("read and change its messages"); err != nil {
		return nil, err
	}
	return q, nil
}
