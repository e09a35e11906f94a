package broker

// An in-process cluster for the remote tests: brokers on one store for
// their quorum queues' data (perfect replication) and a store each for the
// rest, joined by ordered links that can be cut, and a leader per queue
// that the test moves.

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"testing"

	"github.com/sluicemq/sluice/internal/store"
	"github.com/sluicemq/sluice/internal/store/memstore"
)

const fakeReplicated = store.QueueID(1) << 61

// splitStore sends a replicated queue's ops and reads to shared. As a
// Raft group refuses a follower's proposals, a replicated queue's writes
// from a node that does not lead it fail when synced and are dropped
// otherwise.
type splitStore struct {
	store.Store // the node's own
	shared      store.Store
	leads       func(store.QueueID) bool
}

func (s splitStore) split(b *store.Batch) (local, shared *store.Batch) {
	local, shared = &store.Batch{}, &store.Batch{}
	for _, op := range b.Ops {
		if op.Queue&fakeReplicated != 0 && op.Kind != store.OpPutMeta && op.Kind != store.OpDeleteMeta {
			shared.Ops = append(shared.Ops, op)
		} else {
			local.Ops = append(local.Ops, op)
		}
	}
	return local, shared
}

func (s splitStore) Apply(b *store.Batch, sync bool) error {
	local, shared := s.split(b)
	if shared.Len() > 0 {
		for _, op := range shared.Ops {
			if !s.leads(op.Queue) {
				if sync {
					return errors.New("not the leader")
				}
				shared = &store.Batch{}
				break
			}
		}
		if err := s.shared.Apply(shared, sync); err != nil {
			return err
		}
	}
	return s.Store.Apply(local, sync)
}

func (s splitStore) ApplyAsync(b *store.Batch) (func() error, error) {
	if err := s.Apply(b, false); err != nil {
		return nil, err
	}
	return func() error { return nil }, nil
}

func (s splitStore) pick(q store.QueueID) store.Store {
	if q&fakeReplicated != 0 {
		return s.shared
	}
	return s.Store
}

func (s splitStore) Scan(q store.QueueID, from uint64, fn func(uint64, []byte) bool) error {
	return s.pick(q).Scan(q, from, fn)
}
func (s splitStore) Get(q store.QueueID, seq uint64) ([]byte, error) { return s.pick(q).Get(q, seq) }
func (s splitStore) LastSeq(q store.QueueID) (uint64, error)         { return s.pick(q).LastSeq(q) }
func (s splitStore) Floor(q store.QueueID) (uint64, error)           { return s.pick(q).Floor(q) }
func (s splitStore) ScanIndex(q store.QueueID, from uint64, fn func(uint64, []byte) bool) error {
	return s.pick(q).ScanIndex(q, from, fn)
}
func (s splitStore) ScanState(q store.QueueID, fn func(uint64, []byte) bool) error {
	return s.pick(q).ScanState(q, fn)
}

type fakeNet struct {
	t      *testing.T
	mu     sync.Mutex
	nodes  map[string]*fakeNode
	leader map[store.QueueID]string
	links  map[[2]string]*fakeLink
	// waiting: forwarded requests without their reply yet, failed when
	// their link is cut (as the transport fails them).
	waiting map[*fakeWait]struct{}
}

type fakeWait struct {
	a, b string
	once sync.Once
	done func([]byte, error)
}

func (w *fakeWait) settle(resp []byte, err error) { w.once.Do(func() { w.done(resp, err) }) }

type fakeNode struct {
	net  *fakeNet
	name string
	b    *Broker
}

// fakeLink carries one direction's requests, replies and messages in
// order; cutting it drops what it holds.
type fakeLink struct {
	mu   sync.Mutex
	gen  int
	up   bool
	work chan linkItem
}

type linkItem struct {
	gen int
	fn  func()
}

func newFakeNet(t *testing.T, names ...string) *fakeNet {
	n := &fakeNet{t: t, nodes: make(map[string]*fakeNode), leader: make(map[store.QueueID]string),
		links: make(map[[2]string]*fakeLink), waiting: make(map[*fakeWait]struct{})}
	shared := memstore.New()
	for _, a := range names {
		for _, b := range names {
			if a != b {
				l := &fakeLink{up: true, work: make(chan linkItem, 8192)}
				n.links[[2]string{a, b}] = l
				stop := make(chan struct{})
				t.Cleanup(func() { close(stop) })
				go l.run(stop)
			}
		}
	}
	for _, name := range names {
		nd := &fakeNode{net: n, name: name}
		cfg := testConfig()
		cfg.Cluster, cfg.Node = nd, name
		b, err := Open(cfg, splitStore{memstore.New(), shared, func(q store.QueueID) bool { return nd.Leader(q) == nd.name }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close(context.Background()) })
		nd.b = b
		n.nodes[name] = nd
	}
	return n
}

func (l *fakeLink) run(stop chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case it := <-l.work:
			l.mu.Lock()
			ok := l.up && it.gen == l.gen
			l.mu.Unlock()
			if ok {
				it.fn()
			}
		}
	}
}

// send queues fn on the link from a to b; false when it is cut or full.
func (n *fakeNet) send(a, b string, fn func()) bool {
	l := n.links[[2]string{a, b}]
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.up {
		return false
	}
	select {
	case l.work <- linkItem{l.gen, fn}:
		return true
	default:
		return false
	}
}

// cut breaks the connection between a and b (both hear PeerDown);
// heal restores it.
func (n *fakeNet) cut(a, b string) {
	for _, k := range [][2]string{{a, b}, {b, a}} {
		l := n.links[k]
		l.mu.Lock()
		l.up = false
		l.gen++
		l.mu.Unlock()
	}
	n.mu.Lock()
	var ws []*fakeWait
	for w := range n.waiting {
		if w.a == a && w.b == b || w.a == b && w.b == a {
			ws = append(ws, w)
			delete(n.waiting, w)
		}
	}
	n.mu.Unlock()
	for _, w := range ws {
		w.settle(nil, errors.New("connection lost"))
	}
	n.nodes[a].b.PeerDown(b)
	n.nodes[b].b.PeerDown(a)
}

func (n *fakeNet) heal(a, b string) {
	for _, k := range [][2]string{{a, b}, {b, a}} {
		l := n.links[k]
		l.mu.Lock()
		l.up = true
		l.mu.Unlock()
	}
}

// moveLeader makes to lead q, in the order a cluster tells it: every node
// hears the new leader, to starts serving, the old leader stops last.
func (n *fakeNet) moveLeader(id store.QueueID, to string) { n.moveLeaderFlushed(id, to, true) }

// moveLeaderFlushed is moveLeader; without flush, what the old leader
// wrote unsynced may be lost (as with a leader killed).
func (n *fakeNet) moveLeaderFlushed(id store.QueueID, to string, flush bool) {
	n.mu.Lock()
	old := n.leader[id]
	n.mu.Unlock()
	if old != "" && flush {
		// What the old leader wrote unsynced is committed long before
		// an election ends.
		n.nodes[old].b.env.pipe.Flush()
	}
	n.mu.Lock()
	n.leader[id] = to
	n.mu.Unlock()
	for _, nd := range n.nodes {
		nd.b.LeaderChanged(id, to)
	}
	n.nodes[to].b.Serving(id, true)
	if old != "" && old != to {
		n.nodes[old].b.Serving(id, false)
	}
}

// fakeNode is a node's broker.Cluster.
func (nd *fakeNode) QueueID(vhost, name string) store.QueueID {
	h := fnv.New64a()
	h.Write([]byte(vhost + "\x00" + name))
	return fakeReplicated | store.QueueID(h.Sum64()>>4)
}

func (nd *fakeNode) AddMember(context.Context, store.QueueID, string) error {
	return errors.New("not in the fake")
}

func (nd *fakeNode) RemoveMember(context.Context, store.QueueID, string) error {
	return errors.New("not in the fake")
}

func (nd *fakeNode) AddNode(context.Context, string, string) error {
	return errors.New("not in the fake")
}

func (nd *fakeNode) RemoveNode(context.Context, string) error { return errors.New("not in the fake") }

func (nd *fakeNode) CreateQueue(_ context.Context, id store.QueueID, def []byte, _ int) error {
	n := nd.net
	for _, o := range n.nodes {
		if err := o.b.DefineQueue(id, def); err != nil {
			return err
		}
	}
	n.mu.Lock()
	lead := n.leader[id]
	n.mu.Unlock()
	if lead == "" {
		n.moveLeader(id, nd.name)
	}
	return nil
}

func (nd *fakeNode) DeleteQueue(_ context.Context, id store.QueueID) error {
	for _, o := range nd.net.nodes {
		o.b.QueueDeleted(id)
	}
	return nil
}

func (nd *fakeNode) QueueStatus(id store.QueueID) (ReplicaStatus, bool) {
	return ReplicaStatus{Leader: nd.Leader(id)}, true
}

func (nd *fakeNode) Nodes() []NodeStatus { return nil }

func (nd *fakeNode) Replicated(id store.QueueID) bool { return id&fakeReplicated != 0 }

func (nd *fakeNode) Leader(id store.QueueID) string {
	nd.net.mu.Lock()
	defer nd.net.mu.Unlock()
	return nd.net.leader[id]
}

func (nd *fakeNode) Forward(node string, body []byte, done func([]byte, error)) {
	n := nd.net
	to := n.nodes[node]
	w := &fakeWait{a: nd.name, b: node, done: done}
	n.mu.Lock()
	n.waiting[w] = struct{}{}
	n.mu.Unlock()
	settle := func(resp []byte, err error) {
		n.mu.Lock()
		delete(n.waiting, w)
		n.mu.Unlock()
		w.settle(resp, err)
	}
	if to == nil || !n.send(nd.name, node, func() {
		to.b.AcceptForward(nd.name, body, func(resp []byte, err error) {
			if err != nil {
				err = errors.New(err.Error()) // text only, as over the wire
			}
			n.send(node, nd.name, func() { settle(resp, err) }) // a cut fails w
		})
	}) {
		settle(nil, fmt.Errorf("node %s is not connected", node))
	}
}

func (nd *fakeNode) SendMessage(node string, body []byte) bool {
	to := nd.net.nodes[node]
	return to != nil && nd.net.send(nd.name, node, func() { to.b.AcceptMessage(nd.name, body) })
}
