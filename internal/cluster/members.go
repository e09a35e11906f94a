package cluster

// Membership of a queue's group: adding a node as a voter (grow) or
// removing one (shrink), one raft ConfChange at a time. A new member
// joins with an empty log when the leader first writes to it and catches
// up by the log or, once that is compacted, by a snapshot (snapshot.go).

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/sluicemq/sluice/internal/store"
)

// ErrUnknownNode is returned for a node that is not in the cluster list.
var ErrUnknownNode = errors.New("cluster: no such node in the cluster")

// ErrLastMember is returned for removing a group's only member.
var ErrLastMember = errors.New("cluster: cannot remove a group's last member")

// AddMember makes node a voting member of a replicated queue's group (a
// learner is promoted; a node the group does not have joins empty and
// catches up by the log or a snapshot). It may be called on any node
// hosting the group: raft forwards the change to the leader. It returns
// once the change is applied here (at once when node is a voter already).
func (h *Host) AddMember(ctx context.Context, id store.QueueID, node string) error {
	return h.changeMember(ctx, id, node, pb.ConfChangeAddNode, func(voter, _ bool) bool { return voter })
}

// RemoveMember makes node stop voting in a replicated queue's group: it
// becomes a learner, which keeps a copy and still knows the queue, so
// any node serves any queue. A leader that removes itself steps down once
// the change applies. Called on any node hosting the group; it returns
// once the change is applied here.
func (h *Host) RemoveMember(ctx context.Context, id store.QueueID, node string) error {
	return h.changeMember(ctx, id, node, pb.ConfChangeAddLearnerNode, func(voter, _ bool) bool { return !voter })
}

// addLearner adds node to a group as a learner unless it is in it.
func (h *Host) addLearner(ctx context.Context, id store.QueueID, node string) error {
	return h.changeMember(ctx, id, node, pb.ConfChangeAddLearnerNode, func(voter, learner bool) bool { return voter || learner })
}

// PickMembers chooses the voters of a new group of size members (all
// nodes when size is 0 or at least their number): this node first (it
// leads the queue first), then the nodes leading the fewest groups as
// this node knows, ties broken by a hash of the queue and node names so
// that ties spread over the nodes.
func (h *Host) PickMembers(id store.QueueID, size int) []string {
	if size <= 0 || size >= len(h.roster().peers) {
		return nil
	}
	leads := h.leadCounts()
	var others []uint64
	for _, p := range h.roster().peers {
		if p.ID != h.self {
			others = append(others, p.ID)
		}
	}
	tie := func(n uint64) uint64 { return NodeID(fmt.Sprintf("%x/%s", uint64(id), h.roster().names[n])) }
	sort.Slice(others, func(i, j int) bool {
		a, b := others[i], others[j]
		if leads[a] != leads[b] {
			return leads[a] < leads[b]
		}
		return tie(a) < tie(b)
	})
	out := []string{h.cfg.Node}
	for _, n := range others[:size-1] {
		out = append(out, h.roster().names[n])
	}
	return out
}

// changeMember proposes a change of kind for node until done holds for
// the node in the group's conf as applied here.
func (h *Host) changeMember(ctx context.Context, id store.QueueID, node string, kind pb.ConfChangeType, done func(voter, learner bool) bool) error {
	peer := NodeID(node)
	if h.roster().names[peer] != node {
		return fmt.Errorf("%w: %q", ErrUnknownNode, node)
	}
	for {
		var finished bool
		var err error
		if derr := h.do(ctx, func() {
			g := h.groups[uint64(id)]
			if g == nil {
				err = ErrNoGroup
				return
			}
			cs := g.st.conf
			voter, learner := slices.Contains(cs.GetVoters(), peer), slices.Contains(cs.GetLearners(), peer)
			if finished = done(voter, learner); finished {
				return
			}
			if kind != pb.ConfChangeAddNode && voter && len(cs.GetVoters()) == 1 {
				err = ErrLastMember
				return
			}
			if g.lead == 0 {
				return // no leader known yet: try again
			}
			// Raft takes one change at a time: while one is pending, a
			// second is dropped (replaced by an empty entry) and this
			// loop proposes it again. A follower's goes to the leader.
			cc := &pb.ConfChange{Type: kind.Enum(), NodeId: &peer}
			g.wake()
			if perr := g.rn.ProposeConfChange(cc); perr != nil {
				h.log.Debug("cluster: propose a membership change", "group", fmt.Sprintf("%x", g.id), "err", perr)
			}
		}); derr != nil {
			return derr
		}
		if err != nil || finished {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("change members: %w", ErrTimeout)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
