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
	"time"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/sluicemq/sluice/internal/store"
)

// ErrUnknownNode is returned for a node that is not in the cluster list.
var ErrUnknownNode = errors.New("cluster: no such node in the cluster")

// ErrLastMember is returned for removing a group's only member.
var ErrLastMember = errors.New("cluster: cannot remove a group's last member")

// AddMember makes node a member of a replicated queue's group, which this
// node must lead; it returns once the change is applied here (at once
// when node is a member already).
func (h *Host) AddMember(ctx context.Context, id store.QueueID, node string) error {
	return h.changeMember(ctx, id, node, pb.ConfChangeAddNode)
}

// RemoveMember removes node from a replicated queue's group, which this
// node must lead (it may remove itself: it steps down once the change
// applies); it returns once the change is applied here.
func (h *Host) RemoveMember(ctx context.Context, id store.QueueID, node string) error {
	return h.changeMember(ctx, id, node, pb.ConfChangeRemoveNode)
}

func (h *Host) changeMember(ctx context.Context, id store.QueueID, node string, kind pb.ConfChangeType) error {
	peer := NodeID(node)
	if h.names[peer] != node {
		return fmt.Errorf("%w: %q", ErrUnknownNode, node)
	}
	want := kind == pb.ConfChangeAddNode
	for {
		var done bool
		var err error
		if derr := h.do(ctx, func() {
			g := h.groups[uint64(id)]
			if g == nil {
				err = ErrNoGroup
				return
			}
			voters := g.st.conf.GetVoters()
			if done = slices.Contains(voters, peer) == want; done {
				return
			}
			if !g.leader {
				err = ErrNotLeader
				return
			}
			if !want && len(voters) == 1 {
				err = ErrLastMember
				return
			}
			// Raft takes one change at a time: while one is pending, a
			// second is dropped (replaced by an empty entry) and this
			// loop proposes it again.
			cc := &pb.ConfChange{Type: kind.Enum(), NodeId: &peer}
			if perr := g.rn.ProposeConfChange(cc); perr != nil {
				err = fmt.Errorf("%w: %v", ErrNotLeader, perr)
			}
		}); derr != nil {
			return derr
		}
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("change members: %w", ErrTimeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
