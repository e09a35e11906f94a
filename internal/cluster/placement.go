package cluster

// Placement: the voters of a new replicated queue are settled through the
// metadata group, so that nodes declaring one new queue at the same moment
// start one group. Each proposes its choice (PickMembers, which depends on
// what the node knows of the leaders) as a creation of the queue's
// placement key; the first creation in the metadata log wins on every
// node (MetaCreate), and each reads the winner back. A node among the
// winner's voters bootstraps the group with them (identical first entries
// on every such node); a node outside them bootstraps nothing and waits
// until the winner's group has made it a learner and its definition has
// applied here.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sluicemq/sluice/internal/store"
)

// placementPrefix starts the shared metadata keys holding replicated
// queues' first voters: the host's own keyspace, which the broker
// ignores; the metadata group's snapshots carry them (metasnap.go).
const placementPrefix = metaPrefix + "place/"

func placementKey(id store.QueueID) string {
	return fmt.Sprintf("%s%016x", placementPrefix, uint64(id))
}

func encodePlacement(members []string) []byte {
	dst := binary.AppendUvarint(nil, uint64(len(members)))
	for _, m := range members {
		dst = appendBytes(dst, []byte(m))
	}
	return dst
}

func decodePlacement(data []byte) ([]string, error) {
	r := reader{b: data}
	n := r.uvarint()
	if r.err == nil && n > uint64(len(data)) {
		r.err = errBadCommand
	}
	var out []string
	for i := uint64(0); i < n && r.err == nil; i++ {
		out = append(out, string(r.bytes()))
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", errBadCommand, len(r.b))
	}
	return out, r.err
}

// placeQueue returns the voters of a new queue: members, or those another
// node proposed first. ok is false when the metadata group does not run
// here (a joining node before AddNode): then members stand.
func (h *Host) placeQueue(ctx context.Context, id store.QueueID, members []string) (placed []string, ok bool, err error) {
	var hostsMeta bool
	if err := h.do(ctx, func() { hostsMeta = h.groups[MetaGroup] != nil }); err != nil {
		return nil, false, err
	}
	if !hostsMeta {
		return members, false, nil
	}
	timeout := 5 * time.Second
	if d, has := ctx.Deadline(); has {
		timeout = time.Until(d)
	}
	// A Store of its own proposes the creation, with the retries every
	// metadata write gets (meta.go).
	s := &Store{Store: h.st, h: h, timeout: timeout}
	key := placementKey(id)
	if err := s.proposeMeta([]metaOp{{create: true, key: key, value: encodePlacement(members)}}).wait(); err != nil {
		return nil, true, fmt.Errorf("place queue: %w", err)
	}
	v, err := h.st.GetMeta(key)
	if err != nil {
		return nil, true, fmt.Errorf("place queue: read the placement: %w", err)
	}
	if placed, err = decodePlacement(v); err != nil {
		return nil, true, fmt.Errorf("place queue: %w", err)
	}
	return placed, true, nil
}

// groupHosted reports whether this node hosts the group.
func (h *Host) groupHosted(ctx context.Context, gid uint64) (bool, error) {
	var hosted bool
	err := h.do(ctx, func() { hosted = h.groups[gid] != nil })
	return hosted, err
}

// groupDefined reports whether this node hosts the group and has applied
// its definition.
func (h *Host) groupDefined(ctx context.Context, gid uint64) (bool, error) {
	var defined bool
	err := h.do(ctx, func() {
		if g := h.groups[gid]; g != nil {
			defined = g.defined
		}
	})
	return defined, err
}

// awaitDefinition waits until the group's definition has applied here and
// the handler has been told of it.
func (h *Host) awaitDefinition(ctx context.Context, gid uint64) error {
	for {
		defined, err := h.groupDefined(ctx, gid)
		if err != nil {
			return err
		}
		if defined {
			return h.barrier(ctx)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("join the queue's group: %w", ErrTimeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// errNotPlaced: this node is not among the voters placed for the queue.
var errNotPlaced = errors.New("cluster: not among the queue's voters")

// placedMembers settles members for a new queue (placeQueue); it returns
// errNotPlaced when the winner's voters leave this node out.
func (h *Host) placedMembers(ctx context.Context, id store.QueueID, members []string) ([]string, error) {
	placed, ok, err := h.placeQueue(ctx, id, members)
	if err != nil || !ok {
		return members, err
	}
	if !slices.Contains(placed, h.cfg.Node) {
		return nil, errNotPlaced
	}
	return placed, nil
}
