package broker

// Growing and shrinking a quorum queue's members (RabbitMQ's
// rabbitmq-queues grow and shrink, one queue at a time): the HTTP API
// drives these; the cluster makes the change, one at a time.

import (
	"context"
	"time"
)

// memberChangeTimeout bounds one membership change: its commit, and the
// wait for a pending change before it.
const memberChangeTimeout = 30 * time.Second

// GrowQueue makes node a member of a quorum queue: it votes and counts
// for confirms once it has caught up.
func (b *Broker) GrowQueue(vhost, name, node string) error {
	return b.changeMembers(vhost, name, func(ctx context.Context, q *queue) error {
		return b.env.cluster.AddMember(ctx, q.id, node)
	})
}

// ShrinkQueue makes node stop being a member of a quorum queue.
func (b *Broker) ShrinkQueue(vhost, name, node string) error {
	return b.changeMembers(vhost, name, func(ctx context.Context, q *queue) error {
		return b.env.cluster.RemoveMember(ctx, q.id, node)
	})
}

func (b *Broker) changeMembers(vhost, name string, change func(context.Context, *queue) error) error {
	if b.env.cluster == nil {
		return errorf(CommandInvalid, "this node is not in a cluster: queues have no members to change")
	}
	b.vhMu.RLock()
	vh := b.vhosts[vhost]
	b.vhMu.RUnlock()
	if vh == nil {
		return errorf(NotFound, "no vhost '%s'", vhost)
	}
	q, err := vh.queueFor(nil, name)
	if err != nil {
		return err
	}
	if !q.quorum {
		return errorf(PreconditionFailed, "queue '%s' in vhost '%s' is not a quorum queue", name, vhost)
	}
	ctx, cancel := context.WithTimeout(context.Background(), memberChangeTimeout)
	defer cancel()
	return change(ctx, q)
}

// AddClusterNode adds a node to the cluster (`sluice cluster add`): it is
// then started with --join.
func (b *Broker) AddClusterNode(name, addr string) error {
	return b.changeNodes(func(ctx context.Context, cl Cluster) error { return cl.AddNode(ctx, name, addr) })
}

// RemoveClusterNode removes a node from the cluster, from every quorum
// queue's members first (`sluice cluster remove`).
func (b *Broker) RemoveClusterNode(name string) error {
	return b.changeNodes(func(ctx context.Context, cl Cluster) error { return cl.RemoveNode(ctx, name) })
}

func (b *Broker) changeNodes(change func(context.Context, Cluster) error) error {
	if b.env.cluster == nil {
		return errorf(CommandInvalid, "this node is not in a cluster (start it with --node and --cluster)")
	}
	// Removing a node changes every queue's members, one at a time.
	ctx, cancel := context.WithTimeout(context.Background(), 4*memberChangeTimeout)
	defer cancel()
	return change(ctx, b.env.cluster)
}
