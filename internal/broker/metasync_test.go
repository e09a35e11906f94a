package broker

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/access"
	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/records"
	"github.com/sluicemq/sluice/internal/store"
	"github.com/sluicemq/sluice/internal/store/memstore"
)

// stubCluster is a Cluster with no quorum queues: enough for a node that
// hears of other nodes' metadata. The methods it does not define are the
// nil embedded interface's: a call to one fails the test with a panic.
type stubCluster struct{ Cluster }

func (stubCluster) Replicated(store.QueueID) bool { return false }
func (stubCluster) Leader(store.QueueID) string   { return "" }
func (stubCluster) Nodes() []NodeStatus           { return nil }

// Forward answers as a node that does not know the request's queue.
func (stubCluster) Forward(node string, _ []byte, done func([]byte, error)) {
	done(nil, errors.New(encodeRemoteError(errorf(NotFound, "forwarded to %s", node)).Error()))
}

// openNode opens a broker as cluster node name on st.
func openNode(t *testing.T, st store.Store, name string) *Broker {
	t.Helper()
	cfg := testConfig()
	cfg.Cluster, cfg.Node = stubCluster{}, name
	b, err := Open(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

// otherNode writes what another node's metadata entries write into st,
// as the metadata group applies them, and returns the keys.
func otherNode(t *testing.T, st store.Store, fill func(b *store.Batch)) []string {
	t.Helper()
	var b store.Batch
	fill(&b)
	if err := st.Apply(&b, true); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, op := range b.Ops {
		keys = append(keys, op.Key)
	}
	return keys
}

// mustOf returns a function that passes on a value, failing t on an
// error: mustOf[T](t)(f()) for an f returning (T, error).
func mustOf[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// MetaChanged builds from another node's records what Open would: the
// vhost, the user, the exchange, n1's classic queue (known with its node,
// holding nothing here), the binding, the policy; their deletion removes
// them again without touching this node's own records.
func TestMetaChangedReloadsOtherNodesDefinitions(t *testing.T) {
	st := memstore.New()
	b := openNode(t, st, "n2")
	mine := newClient(t, b)
	if _, err := mine.ch.DeclareQueue(QueueDecl{Name: "own", Durable: true}); err != nil {
		t.Fatal(err)
	}
	h, err := access.NewHash("pw", access.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	enc := mustOf[[]byte](t)
	u := records.UserDef{Name: "alice"}
	setUserHash(&u, h)
	xdef := enc(records.EncodeExchangeDef(records.ExchangeDef{VHost: "shop", Name: "orders", Type: "topic", Durable: true}))
	// n1's queue has the id of n2's own queue: ids are per node.
	ownID := b.vhost("/").queues["own"].id
	qdef := enc(records.EncodeQueueDef(records.QueueDef{VHost: "shop", Name: "audit", ID: ownID}))
	bnd := records.BindingDef{VHost: "shop", Source: "orders", Dest: "audit", Key: "#"}
	bdef := enc(records.EncodeBindingDef(bnd))
	bkey := records.BindingKey("shop", false, "orders", "audit", "#", nil)
	keys := otherNode(t, st, func(w *store.Batch) {
		w.PutMeta(records.MetaVHost+"shop", records.EncodeVHost("shop"))
		w.PutMeta(records.UserKey("alice"), records.EncodeUserDef(u))
		w.PutMeta(records.ExchangeKey("shop", "orders"), xdef)
		w.PutMeta(records.QueueKey("shop", "audit"), qdef)
		w.PutMeta(records.QueueNodeKey("shop", "audit"), records.EncodeQueueNode("n1"))
		w.PutMeta(bkey, bdef)
		w.PutMeta(policyKey(false, "shop", "ttl"), records.EncodePolicy([]byte(`{"vhost":"shop","name":"ttl","pattern":"^audit","apply-to":"queues","definition":{"message-ttl":1000}}`)))
	})
	b.MetaChanged(keys)

	if !slices.Contains(b.VHosts(), "shop") {
		t.Fatal("vhost not reloaded")
	}
	if err := b.Authenticate(Login{Door: "amqp", Remote: "127.0.0.1:1", User: "alice", Password: "pw"}); err != nil {
		t.Fatalf("alice: %v", err)
	}
	q, err := b.Queue("shop", "audit")
	if err != nil {
		t.Fatal(err)
	}
	if q.Node != "n1" || q.Policy != "ttl" {
		t.Fatalf("audit: node %q policy %q, want n1 and ttl", q.Node, q.Policy)
	}
	bs := mustOf[[]BindingInfo](t)(b.Bindings("shop"))
	if !slices.ContainsFunc(bs, func(x BindingInfo) bool { return x.Source == "orders" && x.Destination == "audit" }) {
		t.Fatalf("binding not reloaded: %+v", bs)
	}
	// Told twice: nothing changes.
	b.MetaChanged(keys)
	if n := len(mustOf[[]QueueInfo](t)(b.Queues("shop"))); n != 1 {
		t.Fatalf("%d queues after a repeated reload", n)
	}

	keys = otherNode(t, st, func(w *store.Batch) {
		w.DeleteMeta(bkey)
		w.DeleteMeta(records.QueueKey("shop", "audit"))
		w.DeleteMeta(records.QueueNodeKey("shop", "audit"))
		w.DeleteMeta(records.UserKey("alice"))
	})
	b.MetaChanged(keys)
	if _, err := b.Queue("shop", "audit"); CodeOf(err) != NotFound {
		t.Fatalf("audit after its deletion: %v", err)
	}
	if err := b.Authenticate(Login{Door: "amqp", Remote: "127.0.0.1:1", User: "alice", Password: "pw"}); err == nil {
		t.Fatal("alice still logs in after her deletion")
	}
	// n2's own queue with the same id kept its records.
	if _, err := st.GetMeta(records.QueueIDKey(ownID)); err != nil {
		t.Fatalf("the own queue's id record: %v", err)
	}
	if _, err := b.Queue("/", "own"); err != nil {
		t.Fatal(err)
	}

	keys = otherNode(t, st, func(w *store.Batch) {
		w.DeleteMeta(records.ExchangeKey("shop", "orders"))
		w.DeleteMeta(records.MetaVHost + "shop")
	})
	b.MetaChanged(keys)
	if slices.Contains(b.VHosts(), "shop") {
		t.Fatal("vhost still there after its deletion")
	}
}

// A restart on the same store rebuilds the other node's queue as a
// queue of that node, not one of this node's.
func TestRecoverOtherNodesQueue(t *testing.T) {
	st := memstore.New()
	b := openNode(t, st, "n2")
	qdef := mustOf[[]byte](t)(records.EncodeQueueDef(records.QueueDef{VHost: "/", Name: "audit", ID: 77}))
	b.MetaChanged(otherNode(t, st, func(w *store.Batch) {
		w.PutMeta(records.QueueKey("/", "audit"), qdef)
		w.PutMeta(records.QueueNodeKey("/", "audit"), records.EncodeQueueNode("n1"))
	}))
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	b2 := openNode(t, st, "n2")
	q, err := b2.Queue("/", "audit")
	if err != nil || q.Node != "n1" {
		t.Fatalf("after a restart: %+v %v", q, err)
	}
	c := newClient(t, b2)
	// A purge goes to the queue's node (until purges were forwarded, it
	// was refused here).
	if _, err := c.ch.PurgeQueue("audit"); CodeOf(err) != NotFound || err.Error() != "forwarded to n1" {
		t.Fatalf("purge of another node's queue: %v, want it forwarded to n1", err)
	}
	if _, err := b2.Message("/", "audit", 1); CodeOf(err) != ResourceLocked {
		t.Fatalf("reading a message of another node's queue: %v, want resource locked", err)
	}
	// A dead letter, delayed message or move is never written here under
	// the other node's queue id.
	remote := b2.vhost("/").queues["audit"]
	msg := &message.Message{RoutingKey: "audit", Body: []byte("x")}
	if _, err := newPublishReq(msg, []*queue{remote}, nil, time.Now()); CodeOf(err) != ResourceLocked {
		t.Fatalf("a write to another node's queue: %v, want resource locked", err)
	}
}
