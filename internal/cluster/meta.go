package cluster

// The metadata group: one Raft group over every node whose entries are
// the shared metadata writes of the nodes' brokers (vhosts, users,
// permissions, exchanges, bindings, classic queue definitions and their
// placement, policies, schemas). Store routes a batch's shared metadata
// ops there (Store.ShareMeta says which are), waits for their commit, and
// every member applies them to its local store; a member's broker hears
// of the entries it did not make itself (MetaHandler) and reloads what
// they changed.
//
// Writes made before the host starts (the broker's Open: the default
// user, permissions and vhost it seeds on a node's first start) stay
// local; the log applied over them afterwards is the cluster's truth.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sluicemq/sluice/internal/store"
)

// MetaGroup is the id of the metadata group: fixed, and apart from every
// replicated queue's id (those have replicatedBit set).
const MetaGroup uint64 = 1 << 60

// MetaRoute says where a metadata op of a batch goes.
type MetaRoute uint8

const (
	MetaLocal  MetaRoute = iota // the node's own store only
	MetaShared                  // the metadata group; the last write in the log wins
	// MetaCreate: the metadata group, applied only where the key is
	// absent or holds the same value (the first creation in the log wins
	// everywhere). The check runs at apply, on every member alike.
	MetaCreate
)

// MetaHandler is told of the metadata group's entries this node's broker
// did not make (another node's, or its own replayed after a restart or
// whose proposer gave up waiting), and of entries of its own whose
// creations lost: keys are every key the entry wrote or tried to. Calls
// come from the notifier, in log order, after the entry is in the local
// store. A Handler that implements it gets the calls.
type MetaHandler interface {
	MetaChanged(keys []string)
}

// metaAttempt bounds one proposal of a metadata write: a proposal
// forwarded to a leader that died meanwhile has no answer, so it is
// proposed again (metadata ops are idempotent: a create of the same value
// passes, a delete of an absent key is a no-op).
const metaAttempt = 2 * time.Second

// metaOp is one op of a metadata entry.
type metaOp struct {
	create bool // MetaCreate
	del    bool
	key    string
	value  []byte
}

// encodeMetaOps writes ops as uvarint(count) then, per op, a flags byte
// (1 create, 2 delete), the key and the value.
func encodeMetaOps(ops []metaOp) []byte {
	var dst []byte
	dst = binary.AppendUvarint(dst, uint64(len(ops)))
	for _, op := range ops {
		var f byte
		if op.create {
			f |= 1
		}
		if op.del {
			f |= 2
		}
		dst = append(dst, f)
		dst = appendBytes(dst, []byte(op.key))
		dst = appendBytes(dst, op.value)
	}
	return dst
}

func decodeMetaOps(data []byte) ([]metaOp, error) {
	r := reader{b: data}
	n := r.uvarint()
	if r.err == nil && n > uint64(len(data)) {
		r.err = errBadCommand
	}
	var ops []metaOp
	for i := uint64(0); i < n && r.err == nil; i++ {
		f := r.byte()
		op := metaOp{create: f&1 != 0, del: f&2 != 0, key: string(r.bytes()), value: r.bytes()}
		ops = append(ops, op)
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", errBadCommand, len(r.b))
	}
	if r.err != nil {
		return nil, r.err
	}
	return ops, nil
}

// openMeta makes sure the metadata group exists here: a node that has
// never hosted it bootstraps it with every node as a member (the same
// first entries on every node), and it is elected like any group.
func (h *Host) openMeta() error {
	if h.groups[MetaGroup] != nil || h.cfg.Join {
		// A joining node is made a voter by AddNode and gets the log
		// from the leader (nodes.go).
		return nil
	}
	g, err := h.openGroup(MetaGroup)
	if err != nil {
		return err
	}
	peers := h.roster().peers
	if err := g.rn.Bootstrap(peers); err != nil {
		return fmt.Errorf("bootstrap the metadata group: %w", err)
	}
	// One node campaigns at once, so a new cluster has a metadata leader
	// without waiting out an election timeout.
	g.campaign = h.self == peers[0].ID
	h.groups[MetaGroup] = g
	return nil
}

// metaValue is a key's value as of the entries applied so far, this
// round's staged ones included (ok false: absent).
func (h *Host) metaValue(key string) (v []byte, ok bool, err error) {
	if sv, staged := h.metaStaged[key]; staged {
		return sv, sv != nil, nil
	}
	v, err = h.st.GetMeta(key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	return v, err == nil, err
}

// applyMeta stages a metadata entry's ops: a create whose key holds
// another value is skipped, the same on every member, since every member
// applies the same log to the same shared keys.
func (h *Host) applyMeta(c command, staged *store.Batch) ([]func(), error) {
	ops, err := decodeMetaOps(c.body)
	if err != nil {
		return nil, err
	}
	if h.metaStaged == nil {
		h.metaStaged = make(map[string][]byte)
	}
	keys := make([]string, 0, len(ops))
	lost := false
	for _, op := range ops {
		keys = append(keys, op.key)
		if op.create && !op.del {
			cur, ok, err := h.metaValue(op.key)
			if err != nil {
				return nil, fmt.Errorf("metadata entry: read %q: %w", op.key, err)
			}
			if ok && !bytes.Equal(cur, op.value) {
				lost = true
				continue
			}
		}
		if op.del {
			staged.DeleteMeta(op.key)
			h.metaStaged[op.key] = nil
		} else {
			v := nonNil(op.value)
			staged.PutMeta(op.key, v)
			h.metaStaged[op.key] = v
		}
	}
	if c.proposer == h.self && c.id != 0 {
		// Told only if its proposer no longer waits (finishMeta), or if a
		// creation lost: the broker holds what it proposed in memory.
		h.metaMine = append(h.metaMine, metaMine{id: c.id, keys: keys, lost: lost})
		return nil, nil
	}
	return []func(){h.metaNote(keys)}, nil
}

type metaMine struct {
	id   uint64
	keys []string
	lost bool
}

// finishMeta wakes the proposers of this round's own metadata entries
// (their writes are in the local store) and returns the notes for those
// nobody waits for any more, or whose creations lost.
func (h *Host) finishMeta() []func() {
	var notes []func()
	for _, m := range h.metaMine {
		if !h.finish(m.id, nil) || m.lost {
			notes = append(notes, h.metaNote(m.keys))
		}
	}
	h.metaMine = h.metaMine[:0]
	clear(h.metaStaged)
	return notes
}

func (h *Host) metaNote(keys []string) func() {
	return func() {
		if mh, ok := h.handler.(MetaHandler); ok {
			mh.MetaChanged(keys)
		}
	}
}

// isStarted reports whether Start was called.
func (h *Host) isStarted() bool {
	select {
	case <-h.started:
		return true
	default:
		return false
	}
}

// MetaLeader names the metadata group's leader as this node last heard
// ("" when unknown).
func (h *Host) MetaLeader() string { return h.Leader(store.QueueID(MetaGroup)) }

// ShareMeta makes the store route the metadata ops route says are shared
// to the metadata group, once the host has started (before, while the
// broker opens, every write is local), and the host's metadata snapshots
// carry the keys it shares. Call it before the store is used.
func (s *Store) ShareMeta(route func(store.Op) MetaRoute) {
	s.route = route
	s.h.metaRoute.Store(&route)
}

// metaWrite is one metadata write on its way through the group.
type metaWrite struct {
	done chan struct{}
	err  error
}

// proposeMeta replicates ops in the metadata group, proposing again after
// a lost or refused attempt until the store's timeout, and returns the
// write; it is tracked until done, so that a later synced write waits for
// it (a sync covers every write before it, as a local store's does).
func (s *Store) proposeMeta(ops []metaOp) *metaWrite {
	w := &metaWrite{done: make(chan struct{})}
	body := encodeMetaOps(ops)
	s.metaMu.Lock()
	if s.inflight == nil {
		s.inflight = make(map[*metaWrite]struct{})
	}
	s.inflight[w] = struct{}{}
	s.metaMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	first := s.attempt(ctx, body)
	go func() {
		defer cancel()
		w.err = s.awaitMeta(ctx, body, first)
		s.metaMu.Lock()
		delete(s.inflight, w)
		s.metaMu.Unlock()
		close(w.done)
	}()
	return w
}

type metaTry struct {
	p      pending
	ctx    context.Context // bounds the attempt (metaAttempt)
	cancel context.CancelFunc
}

func (s *Store) attempt(ctx context.Context, body []byte) metaTry {
	actx, cancel := context.WithTimeout(ctx, metaAttempt)
	return metaTry{s.h.submit(actx, MetaGroup, cmdMeta, body), actx, cancel}
}

func (s *Store) awaitMeta(ctx context.Context, body []byte, try metaTry) error {
	for {
		// Awaited for one attempt only: a proposal forwarded to a leader
		// that died is never answered.
		err := s.h.await(try.ctx, try.p)
		try.cancel()
		if err == nil {
			return nil
		}
		// No group yet: a node joining a running cluster hosts it once
		// AddNode made it a member.
		if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrNoGroup) {
			return fmt.Errorf("%w: metadata: %w", store.ErrNotCommitted, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: metadata: %w", store.ErrNotCommitted, ErrTimeout)
		case <-time.After(20 * time.Millisecond):
		}
		try = s.attempt(ctx, body)
	}
}

// wait waits for w.
func (w *metaWrite) wait() error {
	<-w.done
	return w.err
}

// earlierMeta returns a wait for the metadata writes in flight now, nil
// when there are none.
func (s *Store) earlierMeta() func() error {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	if len(s.inflight) == 0 {
		return nil
	}
	ws := make([]*metaWrite, 0, len(s.inflight))
	for w := range s.inflight {
		ws = append(ws, w)
	}
	return func() error {
		var all []error
		for _, w := range ws {
			if err := w.wait(); err != nil {
				all = append(all, err)
			}
		}
		return errors.Join(all...)
	}
}

// metaState is the Store's part for the metadata group.
type metaState struct {
	route    func(store.Op) MetaRoute
	metaMu   sync.Mutex
	inflight map[*metaWrite]struct{}
}
