package main

// Which metadata writes a cluster node shares through the metadata group
// (internal/cluster/meta.go): the broker's records say (records.SharingOf),
// except a quorum queue's definition, which its own group carries to
// every member.

import (
	"strings"

	"github.com/sluicemq/sluice/internal/cluster"
	"github.com/sluicemq/sluice/internal/records"
	"github.com/sluicemq/sluice/internal/store"
)

// metaRoute routes a metadata op; local is the node's own store, where a
// deleted definition is read to tell a quorum queue's from a classic one's.
func metaRoute(local store.Store) func(store.Op) cluster.MetaRoute {
	return func(op store.Op) cluster.MetaRoute {
		switch records.SharingOf(op.Key) {
		case records.Shared:
			return cluster.MetaShared
		case records.SharedCreate:
			if strings.HasPrefix(op.Key, records.MetaQueue) && quorumDef(local, op) {
				return cluster.MetaLocal
			}
			return cluster.MetaCreate
		}
		return cluster.MetaLocal
	}
}

// quorumDef reports whether op writes or deletes a quorum queue's
// definition.
func quorumDef(local store.Store, op store.Op) bool {
	v := op.Value
	if op.Kind == store.OpDeleteMeta {
		var err error
		if v, err = local.GetMeta(op.Key); err != nil {
			return false
		}
	}
	d, err := records.DecodeQueueDef(v)
	return err == nil && cluster.Replicated(d.ID)
}
