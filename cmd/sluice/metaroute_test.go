package main

import (
	"testing"

	"github.com/sluicemq/sluice/internal/cluster"
	"github.com/sluicemq/sluice/internal/records"
	"github.com/sluicemq/sluice/internal/store"
	"github.com/sluicemq/sluice/internal/store/memstore"
)

// A quorum queue's definition stays with its group, written or deleted; a
// classic one's is created once in the metadata group; node-local keys
// stay local.
func TestMetaRoute(t *testing.T) {
	local := memstore.New()
	route := metaRoute(local)
	def := func(id store.QueueID) []byte {
		v, err := records.EncodeQueueDef(records.QueueDef{VHost: "/", Name: "q", ID: id})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	qkey := records.QueueKey("/", "q")
	quorum := def(cluster.QueueID("/", "q"))
	var b store.Batch
	b.PutMeta(qkey, quorum)
	if err := local.Apply(&b, true); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		op   store.Op
		want cluster.MetaRoute
	}{
		{store.Op{Kind: store.OpPutMeta, Key: qkey, Value: quorum}, cluster.MetaLocal},
		{store.Op{Kind: store.OpDeleteMeta, Key: qkey}, cluster.MetaLocal}, // the stored one is a quorum queue's
		{store.Op{Kind: store.OpPutMeta, Key: qkey, Value: def(7)}, cluster.MetaCreate},
		{store.Op{Kind: store.OpPutMeta, Key: records.QueueNodeKey("/", "q"), Value: records.EncodeQueueNode("n1")}, cluster.MetaCreate},
		{store.Op{Kind: store.OpPutMeta, Key: records.ExchangeKey("/", "x")}, cluster.MetaCreate},
		{store.Op{Kind: store.OpPutMeta, Key: records.UserKey("alice")}, cluster.MetaShared},
		{store.Op{Kind: store.OpDeleteMeta, Key: records.MetaVHost + "shop"}, cluster.MetaShared},
		{store.Op{Kind: store.OpPutMeta, Key: records.QueueIDKey(7)}, cluster.MetaLocal},
		{store.Op{Kind: store.OpPutMeta, Key: records.MetaPermsSeeded}, cluster.MetaLocal},
	} {
		if got := route(c.op); got != c.want {
			t.Errorf("%v of %q: %d, want %d", c.op.Kind, c.op.Key, got, c.want)
		}
	}
}
