package cluster

// The cluster's node list at run time. It is the state of one more Raft
// group, the nodes group (id nodesGroup), whose voters are the nodes:
// a cmdNodeChange entry adds or removes one node, applied to the list as
// the log has made it so far, and each node applies the result to its
// roster and its transport and keeps it in its store (the group's "def"
// key, which its snapshots carry). Changes made at once on two nodes both
// hold, in log order. The entry also carries the whole list as its
// proposer saw it, which the first change applies to (the list is stored
// from the first change on; before, every node has the list it was
// started with, which a joining node's may not match). Entries of an
// earlier version (cmdNodes) carry the whole list and still apply. The
// stored list wins over Config.Nodes at start, so a restart with an old
// --cluster does not undo an AddNode or RemoveNode; Config.Nodes only
// starts the list (every first node bootstraps the group with it, the
// same on each) or, with Config.Join, says where the others are until
// the list arrives.
//
// AddNode puts a node in the list, makes it a voter of the nodes group
// and of the metadata group (meta.go), and a learner of every queue group (so it knows every queue); it
// catches up by the log or a snapshot once it runs. RemoveNode first
// removes the node from every queue group, then from the nodes group and
// the list.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/sluicemq/sluice/internal/store"
)

// nodesGroup is the id of the nodes group: in the replicated queue id
// space (so no classic queue has it) with the hash bits zero, which no
// queue's hash takes in practice.
const nodesGroup = uint64(replicatedBit)

// roster is the node list as this node applies it; replaced whole.
type roster struct {
	nodes map[string]string // name -> cluster address
	names map[uint64]string // raft id -> name
	peers []raft.Peer       // sorted by id
}

func newRoster(nodes map[string]string) *roster {
	r := &roster{nodes: maps.Clone(nodes), names: make(map[uint64]string)}
	for n := range nodes {
		r.names[NodeID(n)] = n
		r.peers = append(r.peers, raft.Peer{ID: NodeID(n)})
	}
	sort.Slice(r.peers, func(i, j int) bool { return r.peers[i].ID < r.peers[j].ID })
	return r
}

func (h *Host) roster() *roster { return h.ros.Load() }

// Nodes returns the node list: name -> cluster address.
func (h *Host) Nodes() map[string]string { return maps.Clone(h.roster().nodes) }

// OnNodes sets what hears of a new node list (the transport's SetNodes);
// call it before Start. It runs on the notifier, in log order.
func (h *Host) OnNodes(fn func(map[string]string)) { h.onNodes = fn }

func encodeNodes(nodes map[string]string) []byte {
	var b strings.Builder
	for _, n := range slices.Sorted(maps.Keys(nodes)) {
		b.WriteString(n + "=" + nodes[n] + "\n")
	}
	return []byte(b.String())
}

func decodeNodes(data []byte) (map[string]string, error) {
	nodes := make(map[string]string)
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		name, addr, ok := strings.Cut(line, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("%w: node list line %q", errBadCommand, line)
		}
		nodes[name] = addr
	}
	return nodes, nil
}

// loadRoster starts the roster from the stored list, else Config.Nodes.
func (h *Host) loadRoster() error {
	v, err := h.st.GetMeta(groupKey(nodesGroup, "def"))
	if err == store.ErrNotFound {
		h.ros.Store(newRoster(h.cfg.Nodes))
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the node list: %w", err)
	}
	nodes, err := decodeNodes(v)
	if err != nil {
		return err
	}
	if _, ok := nodes[h.cfg.Node]; !ok {
		return fmt.Errorf("cluster: node %q was removed from the cluster (its list: %s); to join again, start it on an empty data directory with --join", h.cfg.Node, strings.TrimSpace(string(v)))
	}
	h.ros.Store(newRoster(nodes))
	return nil
}

// startNodesGroup bootstraps the nodes group on a node's first start (in
// New), unless the node joins a running cluster.
func (h *Host) startNodesGroup() error {
	if h.groups[nodesGroup] != nil || h.cfg.Join {
		return nil
	}
	g, err := h.openGroup(nodesGroup)
	if err != nil {
		return err
	}
	peers := h.roster().peers
	if err := g.rn.Bootstrap(peers); err != nil {
		return fmt.Errorf("start the node list: %w", err)
	}
	h.groups[nodesGroup] = g
	// One node campaigns at once (the rest would split the votes); the
	// others wait for it or for an election timeout.
	g.campaign = peers[0].ID == h.self
	return nil
}

// applyNodes stages a cmdNodes entry and returns the note that switches
// the roster and tells the transport.
func (h *Host) applyNodes(body []byte, staged *store.Batch) (func(), error) {
	nodes, err := decodeNodes(body)
	if err != nil {
		return nil, err
	}
	h.stageNodes(staged, body)
	return h.nodesNote(nodes), nil
}

// stageNodes stages the stored node list, where the round's later
// changes read it (metaValue; cleared by finishMeta).
func (h *Host) stageNodes(staged *store.Batch, v []byte) {
	key := groupKey(nodesGroup, "def")
	staged.PutMeta(key, v)
	if h.metaStaged == nil {
		h.metaStaged = make(map[string][]byte)
	}
	h.metaStaged[key] = v
}

// nodeChange is a cmdNodeChange body: one node added (addr set) or
// removed, then the list as its proposer saw it with the change made.
type nodeChange struct {
	add        bool
	name, addr string
	seen       map[string]string
}

// encodeNodeChange writes the change as its first line ("+name=addr" or
// "-name"), then the seen list's lines (encodeNodes).
func encodeNodeChange(c nodeChange) []byte {
	line := "-" + c.name
	if c.add {
		line = "+" + c.name + "=" + c.addr
	}
	return append([]byte(line+"\n"), encodeNodes(c.seen)...)
}

func decodeNodeChange(data []byte) (nodeChange, error) {
	first, rest, _ := strings.Cut(string(data), "\n")
	var c nodeChange
	switch {
	case strings.HasPrefix(first, "+"):
		var ok bool
		c.add = true
		if c.name, c.addr, ok = strings.Cut(first[1:], "="); !ok || c.name == "" {
			return c, fmt.Errorf("%w: node list change %q", errBadCommand, first)
		}
	case strings.HasPrefix(first, "-") && len(first) > 1:
		c.name = first[1:]
	default:
		return c, fmt.Errorf("%w: node list change %q", errBadCommand, first)
	}
	var err error
	c.seen, err = decodeNodes([]byte(rest))
	return c, err
}

// applyNodeChange stages a cmdNodeChange entry: the change made to the
// list as stored by the entries before it (this round's included), or to
// the list its proposer saw when none is stored yet. Adding a node that
// is in the list at another address changes nothing (the first holds).
func (h *Host) applyNodeChange(body []byte, staged *store.Batch) (func(), error) {
	c, err := decodeNodeChange(body)
	if err != nil {
		return nil, err
	}
	key := groupKey(nodesGroup, "def")
	cur, ok, err := h.metaValue(key) // meta.go: the store and this round's staged keys
	if err != nil {
		return nil, fmt.Errorf("read the node list: %w", err)
	}
	nodes := c.seen
	if ok {
		if nodes, err = decodeNodes(cur); err != nil {
			return nil, err
		}
	}
	if _, in := nodes[c.name]; c.add && !in {
		nodes[c.name] = c.addr
	} else if !c.add {
		delete(nodes, c.name)
	}
	h.stageNodes(staged, encodeNodes(nodes))
	return h.nodesNote(nodes), nil
}

func (h *Host) nodesNote(nodes map[string]string) func() {
	return func() {
		h.ros.Store(newRoster(nodes))
		if h.onNodes != nil {
			h.onNodes(maps.Clone(nodes))
		}
	}
}

// ErrSelf is returned for removing the node that is asked to.
var ErrSelf = errors.New("cluster: a node cannot remove itself; ask another node")

// AddNode adds a node to the cluster: to the node list, as a voter of the
// nodes group and a learner of every queue group this node hosts. Start
// the new node with Config.Join. It returns once all is applied here.
func (h *Host) AddNode(ctx context.Context, name, addr string) error {
	if name == "" || addr == "" || strings.ContainsAny(name, "=,\n") || strings.ContainsAny(addr, "=,\n") {
		return fmt.Errorf("%w: want a name and a host:port", ErrBadNode)
	}
	nodes := h.Nodes()
	if old, ok := nodes[name]; ok && old != addr {
		return fmt.Errorf("%w: node %q is in the cluster at %s (changing an address is not supported)", ErrBadNode, name, old)
	}
	for n := range nodes {
		if n != name && NodeID(n) == NodeID(name) {
			return fmt.Errorf("%w: node names %q and %q hash to the same id", ErrBadNode, n, name)
		}
	}
	nodes[name] = addr
	if err := h.proposeNodes(ctx, nodeChange{add: true, name: name, addr: addr, seen: nodes}); err != nil {
		return err
	}
	// The roster switches on the notifier, which may run the entry's
	// note after the proposer woke (and its barrier ran).
	for h.roster().names[NodeID(name)] != name {
		select {
		case <-ctx.Done():
			return fmt.Errorf("add %s: the node list applied here lacks it: %w", name, ErrTimeout)
		case <-time.After(5 * time.Millisecond):
		}
	}
	if err := h.changeMember(ctx, store.QueueID(nodesGroup), name, pb.ConfChangeAddNode, func(voter, _ bool) bool { return voter }); err != nil {
		return fmt.Errorf("make %s a voter of the node list: %w", name, err)
	}
	if err := h.changeMember(ctx, store.QueueID(MetaGroup), name, pb.ConfChangeAddNode, func(voter, _ bool) bool { return voter }); err != nil {
		return fmt.Errorf("make %s a voter of the metadata group: %w", name, err) // meta.go
	}
	for _, id := range h.queueGroups(ctx) {
		if err := h.addLearner(ctx, store.QueueID(id), name); err != nil && !errors.Is(err, ErrNoGroup) {
			return fmt.Errorf("add %s to queue group %x: %w", name, id, err)
		}
	}
	return nil
}

// ErrBadNode is returned for a node name or address AddNode cannot take.
var ErrBadNode = errors.New("cluster: bad node")

// RemoveNode removes a node from every queue group this node hosts, then
// from the nodes group and the list; the node stops being connected. A
// queue whose only member it is stops the removal (ErrLastMember: grow
// the queue onto another node first); the groups done by then stay done.
func (h *Host) RemoveNode(ctx context.Context, name string) error {
	if name == h.cfg.Node {
		return ErrSelf
	}
	nodes := h.Nodes()
	if _, ok := nodes[name]; !ok {
		return fmt.Errorf("%w: %q", ErrUnknownNode, name)
	}
	gone := func(voter, learner bool) bool { return !voter && !learner }
	for _, id := range append(h.queueGroups(ctx), MetaGroup, nodesGroup) {
		err := h.changeMember(ctx, store.QueueID(id), name, pb.ConfChangeRemoveNode, gone)
		if err != nil && !errors.Is(err, ErrNoGroup) {
			return fmt.Errorf("remove %s from group %x: %w", name, id, err)
		}
	}
	delete(nodes, name)
	return h.proposeNodes(ctx, nodeChange{name: name, seen: nodes})
}

// queueGroups lists the queue groups this node hosts.
func (h *Host) queueGroups(ctx context.Context) []uint64 {
	var ids []uint64
	h.do(ctx, func() {
		for id := range h.groups {
			if id != nodesGroup && id != MetaGroup {
				ids = append(ids, id)
			}
		}
	})
	slices.Sort(ids)
	return ids
}

// proposeNodes commits a change of the node list (from any node: raft
// forwards a follower's proposal; a lost one is proposed again, which
// applies as a no-op).
func (h *Host) proposeNodes(ctx context.Context, c nodeChange) error {
	return h.proposeRetrying(ctx, "change the node list", nodesGroup, cmdNodeChange, encodeNodeChange(c), 50*time.Millisecond, nil)
}
