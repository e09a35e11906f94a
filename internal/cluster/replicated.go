package cluster

// Replicated queues: a queue id with replicatedBit set is a Raft group of
// its own (the group id is the queue id), and every store write to it is
// a log entry of that group, applied to each member's local store once
// committed.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"go.etcd.io/raft/v3"

	"github.com/sluicemq/sluice/internal/store"
)

// replicatedBit marks the ids of replicated queues: below logQueueBit and
// above any id the broker allocates for a classic queue.
const replicatedBit = store.QueueID(1) << 61

// Replicated reports whether q is a replicated queue's id.
func Replicated(q store.QueueID) bool { return q&replicatedBit != 0 && q&logQueueBit == 0 }

// NewQueueID returns a fresh id for a replicated queue (random, so that
// nodes need not agree on a counter).
func NewQueueID() store.QueueID {
	var b [8]byte
	rand.Read(b[:])
	return replicatedBit | store.QueueID(binary.BigEndian.Uint64(b[:])>>4)
}

// QueueID is the id of the replicated queue name in vhost: the same on
// every node, so that nodes declaring one queue at the same moment create
// one group (a collision of two names in 60 bits is not a concern).
func QueueID(vhost, name string) store.QueueID {
	h := sha256.Sum256([]byte(vhost + "\x00" + name))
	return replicatedBit | store.QueueID(binary.BigEndian.Uint64(h[:8])>>4)
}

// CreateQueue starts the group of a new replicated queue with members as
// its voters (nil: every node; this node must be one), campaigns and
// commits its definition (handed to every member's Handler.DefineQueue),
// then adds the other nodes as learners: they hold a copy and know the
// queue and its leader, but neither vote nor count for a commit. It
// returns once the definition is applied here. Several nodes may create
// one group at once: each bootstraps the same membership (identical first
// entries), one of them is elected, and the others see its definition
// apply; a node that already hosts the group only waits for the
// definition. Nodes picking different members for one queue at the same
// moment would bootstrap conflicting groups, so a choice of members that
// is not every node is settled first through the metadata group
// (placement.go): the first choice in its log wins, and a node left out
// of it waits to join the winner's group as a learner.
func (h *Host) CreateQueue(ctx context.Context, id store.QueueID, def []byte, members []string) error {
	if !Replicated(id) {
		return fmt.Errorf("cluster: %x is not a replicated queue id", uint64(id))
	}
	if members != nil {
		hosted, err := h.groupHosted(ctx, uint64(id))
		if err != nil {
			return err
		}
		if !hosted {
			placed, err := h.placedMembers(ctx, id, members)
			if errors.Is(err, errNotPlaced) {
				return h.awaitDefinition(ctx, uint64(id))
			}
			if err != nil {
				return err
			}
			members = placed
		}
	}
	voters := h.roster().peers
	if members != nil {
		voters = nil
		for _, m := range members {
			if h.roster().names[NodeID(m)] != m {
				return fmt.Errorf("%w: %q", ErrUnknownNode, m)
			}
			voters = append(voters, raft.Peer{ID: NodeID(m)})
		}
		if !slices.ContainsFunc(voters, func(p raft.Peer) bool { return p.ID == h.self }) {
			return fmt.Errorf("cluster: the creating node %q is not among the members %v", h.cfg.Node, members)
		}
		sort.Slice(voters, func(i, j int) bool { return voters[i].ID < voters[j].ID })
	}
	if err := h.createGroup(ctx, id, def, voters); err != nil {
		return err
	}
	for _, p := range h.roster().peers {
		if !slices.ContainsFunc(voters, func(v raft.Peer) bool { return v.ID == p.ID }) {
			if err := h.addLearner(ctx, id, h.roster().names[p.ID]); err != nil {
				return fmt.Errorf("add %s as a learner: %w", h.roster().names[p.ID], err)
			}
		}
	}
	return nil
}

func (h *Host) createGroup(ctx context.Context, id store.QueueID, def []byte, voters []raft.Peer) error {
	gid := uint64(id)
	var err error
	if derr := h.do(ctx, func() {
		if h.groups[gid] != nil {
			return
		}
		var g *group
		if g, err = h.openGroup(gid); err != nil {
			return
		}
		if err = g.rn.Bootstrap(voters); err != nil {
			return
		}
		h.groups[gid] = g
		g.campaign = true
	}); derr != nil {
		return derr
	}
	if err != nil {
		return fmt.Errorf("create queue group: %w", err)
	}
	// Propose the definition (a follower's goes to the leader; the first
	// attempts fail until the group has elected one), unless another
	// node's definition applied first. A definition applying twice is
	// harmless: DefineQueue is idempotent.
	// The handler has defined the queue once the notifier has run what
	// the definition's apply queued (proposeRetrying's barrier).
	return h.proposeRetrying(ctx, "create queue group", gid, cmdDefine, def, 20*time.Millisecond,
		func() (bool, error) { return h.groupDefined(ctx, gid) })
}

// proposeRetrying proposes a command until it commits, then waits for
// the notifier to have run what its apply queued (barrier). A follower's
// proposal goes to the leader; one that finds no leader yet, or is lost
// on the way (each attempt is bounded), is made again after pause, so
// applying it twice must be harmless. done, when set, runs before each
// attempt: true means there is nothing left to propose.
func (h *Host) proposeRetrying(ctx context.Context, what string, group uint64, kind cmdKind, body []byte,
	pause time.Duration, done func() (bool, error)) error {
	for {
		if done != nil {
			ok, err := done()
			if err != nil {
				return err
			}
			if ok {
				return h.barrier(ctx)
			}
		}
		actx, cancel := context.WithTimeout(ctx, time.Second)
		err := h.proposeCmd(actx, group, kind, body)
		cancel()
		if err == nil {
			return h.barrier(ctx)
		}
		if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrTimeout) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ErrTimeout)
		case <-time.After(pause):
		}
	}
}

// DeleteQueue deletes a replicated queue this node leads: every member
// drops its messages and hears Handler.QueueDeleted. It returns once that
// has run here. The group stays (idle), so that declaring the name again
// defines the queue anew in it.
func (h *Host) DeleteQueue(ctx context.Context, id store.QueueID) error {
	if err := h.proposeCmd(ctx, uint64(id), cmdDelete, nil); err != nil {
		return err
	}
	return h.barrier(ctx)
}

// GroupStatus describes one group as this node sees it.
type GroupStatus struct {
	Leader  string   // "" when unknown
	Members []string // sorted
	Serving bool     // this node leads and serves it
}

// QueueStatus returns the status of a replicated queue's group, or false
// when this node does not host it.
func (h *Host) QueueStatus(id store.QueueID) (GroupStatus, bool) {
	var gs GroupStatus
	found := false
	err := h.do(context.Background(), func() {
		g := h.groups[uint64(id)]
		if g == nil {
			return
		}
		found = true
		gs.Leader = h.roster().names[g.lead]
		gs.Serving = g.serving
		for _, v := range g.st.conf.GetVoters() {
			gs.Members = append(gs.Members, h.roster().names[v])
		}
		sort.Strings(gs.Members)
	})
	return gs, err == nil && found
}

// Store is the node's store with replicated queues' writes going through
// their groups. Reads go to the local store, which holds what this node
// has applied. Apply and ApplyAsync split a batch: the local part is
// applied as usual, each replicated queue's part is proposed to its group
// and, for a synced Apply and for ApplyAsync, waited for; a batch touching
// several groups is therefore not atomic across them. A replicated write
// is visible to reads once it is waited for (Apply's return, ApplyAsync's
// wait), not when ApplyAsync returns; an unsynced Apply's replicated part
// is only submitted (in order after earlier writes), not waited for.
type Store struct {
	store.Store
	h         *Host
	timeout   time.Duration
	metaState // meta.go
}

// NewStore wraps local (the store h was opened on). A replicated write
// not committed within timeout fails with ErrTimeout.
func NewStore(local store.Store, h *Host, timeout time.Duration) *Store {
	return &Store{Store: local, h: h, timeout: timeout}
}

// split returns b's local ops, each replicated queue's ops and the shared
// metadata ops (meta.go), all in b's order; local is b itself when b
// holds neither of the others.
func (s *Store) split(b *store.Batch) (local *store.Batch, groups map[uint64][]store.Op, meta []metaOp) {
	route := s.route
	if route != nil && !s.h.isStarted() {
		route = nil
	}
	for i, op := range b.Ops {
		isMeta := op.Kind == store.OpPutMeta || op.Kind == store.OpDeleteMeta
		r := MetaLocal
		if isMeta && route != nil {
			r = route(op)
		}
		if isMeta && r == MetaLocal || !isMeta && !Replicated(op.Queue) {
			if local != nil {
				local.Ops = append(local.Ops, op)
			}
			continue
		}
		if local == nil {
			local = &store.Batch{Ops: append([]store.Op(nil), b.Ops[:i]...)}
		}
		if isMeta {
			meta = append(meta, metaOp{create: r == MetaCreate, del: op.Kind == store.OpDeleteMeta, key: op.Key, value: op.Value})
			continue
		}
		if groups == nil {
			groups = make(map[uint64][]store.Op)
		}
		groups[uint64(op.Queue)] = append(groups[uint64(op.Queue)], op)
	}
	if local == nil {
		return b, nil, nil
	}
	return local, groups, meta
}

// Apply applies b's local part, proposes its replicated parts and waits
// for them (for an unsynced b, only for its metadata part). A synced
// Apply also waits for the metadata writes in flight before it.
func (s *Store) Apply(b *store.Batch, sync bool) error {
	var earlier func() error
	if sync {
		earlier = s.earlierMeta()
	}
	local, groups, meta := s.split(b)
	if groups == nil && meta == nil {
		err := s.Store.Apply(b, sync)
		if earlier != nil {
			err = errors.Join(err, earlier())
		}
		return err
	}
	if err := b.Validate(); err != nil {
		return err
	}
	var mw *metaWrite
	if meta != nil {
		mw = s.proposeMeta(meta)
	}
	waits := []func() error{earlier}
	if mw != nil {
		waits = append(waits, mw.wait)
	}
	if !sync {
		// An unsynced write (a delivery's state, an ack, a floor) does not
		// wait for its commit: it enters each log after the writes
		// submitted before it, and if it is lost with a leader the
		// message is delivered again (at-least-once).
		for g, ops := range groups {
			s.h.submitNoWait(g, cmdOps, encodeOps(nil, ops))
		}
	} else if groups != nil {
		waits = append(waits, s.propose(groups))
	}
	var lerr error
	if local.Len() > 0 {
		lerr = s.Store.Apply(local, sync)
	}
	return errors.Join(lerr, waitAll(waits))
}

func waitAll(waits []func() error) error {
	var all []error
	for _, w := range waits {
		if w != nil {
			all = append(all, w())
		}
	}
	return errors.Join(all...)
}

func (s *Store) ApplyAsync(b *store.Batch) (func() error, error) {
	earlier := s.earlierMeta()
	local, groups, meta := s.split(b)
	if groups == nil && meta == nil {
		wait, err := s.Store.ApplyAsync(b)
		if err != nil || earlier == nil {
			return wait, err
		}
		return func() error { return errors.Join(wait(), earlier()) }, nil
	}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	waits := []func() error{earlier}
	if meta != nil {
		waits = append(waits, s.proposeMeta(meta).wait)
	}
	if groups != nil {
		waits = append(waits, s.propose(groups))
	}
	if local.Len() > 0 {
		lwait, err := s.Store.ApplyAsync(local)
		if err != nil {
			waitAll(waits)
			return nil, err
		}
		waits = append(waits, lwait)
	}
	return func() error { return waitAll(waits) }, nil
}

// propose submits each group's ops now, so that successive calls enter
// each log in call order, and returns a function that waits for them.
func (s *Store) propose(groups map[uint64][]store.Op) func() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	type sub struct {
		group uint64
		p     pending
	}
	subs := make([]sub, 0, len(groups))
	for g, ops := range groups {
		subs = append(subs, sub{g, s.h.submit(ctx, g, cmdOps, encodeOps(nil, ops))})
	}
	return func() error {
		defer cancel()
		var all []error
		for _, sb := range subs {
			err := s.h.await(ctx, sb.p)
			switch {
			case err == nil:
			case errors.Is(err, ErrNotLeader), errors.Is(err, ErrTimeout), errors.Is(err, ErrNoGroup):
				// Leadership moved or the majority is out of reach: the
				// broker must not take it for a failed disk.
				all = append(all, fmt.Errorf("replicate queue %x: %w: %w", sb.group, store.ErrNotCommitted, err))
			case errors.Is(err, ErrStopped):
				all = append(all, fmt.Errorf("replicate queue %x: %w: %w", sb.group, store.ErrClosed, err))
			default:
				all = append(all, fmt.Errorf("replicate queue %x: %w", sb.group, err))
			}
		}
		return errors.Join(all...)
	}
}
