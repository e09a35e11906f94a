package records

// Which metadata a cluster shares: the keys its metadata group replicates
// to every node, the rest staying the node's own.

import "strings"

// MetaQueueNode is a shared classic queue's placement: the node that holds
// its messages.
const MetaQueueNode = "qn/" // qn/<vhost>\0<name> -> node name

// QueueNodeKey is the key of a classic queue's placement.
func QueueNodeKey(vhost, name string) string { return MetaQueueNode + vhost + "\x00" + name }

// EncodeQueueNode encodes a placement: the node's name.
func EncodeQueueNode(node string) []byte { return appendString([]byte{V1}, node) }

func DecodeQueueNode(v []byte) (string, error) {
	r, err := versioned(v)
	if err != nil {
		return "", err
	}
	node := r.string()
	return node, r.done()
}

// Sharing says how a metadata key is kept in a cluster.
type Sharing uint8

const (
	// NodeLocal keys stay in the node's store: queue ids and their
	// counter, the delay queue, audit entries, workflow tasks, the
	// seeding marks, the cluster's own state.
	NodeLocal Sharing = iota
	// Shared keys are written through the metadata group, the last write
	// in its log winning: vhosts, users, permissions, bindings, policies,
	// schemas, user and vhost limits.
	Shared
	// SharedCreate keys are shared and created once: a put applies only
	// where the key is absent or holds the same value, so of two nodes
	// creating one exchange or queue at the same moment the first in the
	// log wins everywhere.
	SharedCreate
)

// SharingOf returns how key is kept in a cluster. A quorum queue's
// definition (under MetaQueue, like a classic one's) is the caller's to
// tell apart: its queue's own group carries it.
func SharingOf(key string) Sharing {
	switch {
	case strings.HasPrefix(key, MetaExchange), strings.HasPrefix(key, MetaQueue), strings.HasPrefix(key, MetaQueueNode):
		return SharedCreate
	case strings.HasPrefix(key, MetaVHost), strings.HasPrefix(key, MetaUser), strings.HasPrefix(key, MetaPermission),
		strings.HasPrefix(key, MetaBinding), strings.HasPrefix(key, MetaPolicy), strings.HasPrefix(key, MetaSchema),
		strings.HasPrefix(key, MetaLimit):
		return Shared
	}
	return NodeLocal
}
