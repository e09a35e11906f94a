package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/sluicemq/sluice/internal/store"
	"github.com/sluicemq/sluice/internal/store/memstore"
)

// memNet joins hosts in one process. Each message is marshalled and
// unmarshalled, as on the wire, and delivered by the destination's pump
// goroutine; a node that is down or cut off loses what is sent to it.
type memNet struct {
	mu    sync.Mutex
	nodes map[uint64]*memNode
	cut   map[uint64]bool
	sent  map[uint64]int // raft messages sent per group
	wg    sync.WaitGroup
}

type memNode struct {
	h    *Host
	in   chan memMsg
	stop chan struct{}
}

type memMsg struct {
	group uint64
	from  uint64
	data  []byte
}

func newMemNet(t *testing.T) *memNet {
	n := &memNet{nodes: make(map[uint64]*memNode), cut: make(map[uint64]bool), sent: make(map[uint64]int)}
	t.Cleanup(func() {
		n.mu.Lock()
		var ids []uint64
		for id := range n.nodes {
			ids = append(ids, id)
		}
		n.mu.Unlock()
		for _, id := range ids {
			n.down(id)
		}
		n.wg.Wait()
	})
	return n
}

func (n *memNet) up(h *Host) {
	mn := &memNode{h: h, in: make(chan memMsg, 8192), stop: make(chan struct{})}
	n.mu.Lock()
	n.nodes[h.Self()] = mn
	n.mu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			select {
			case <-mn.stop:
				return
			case m := <-mn.in:
				if m.group == snapGroup {
					h.DeliverChunk(m.from, m.data)
					continue
				}
				var msg pb.Message
				if err := proto.Unmarshal(m.data, &msg); err != nil {
					panic(err)
				}
				h.Deliver(m.group, &msg)
			}
		}
	}()
}

// down stops a node's host and its pump, as a crash: nothing more is
// written to its store.
func (n *memNet) down(id uint64) {
	n.mu.Lock()
	mn := n.nodes[id]
	delete(n.nodes, id)
	n.mu.Unlock()
	if mn == nil {
		return
	}
	close(mn.stop)
	mn.h.Stop()
}

type memSender struct {
	n    *memNet
	from uint64
}

func (s memSender) Send(to, group uint64, m *pb.Message) {
	data, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	s.send(to, memMsg{group, s.from, data})
}

func (s memSender) Keepalive() {}

// Live: a node is heard from while it is up and not cut off.
func (s memSender) Live(to uint64) bool {
	s.n.mu.Lock()
	defer s.n.mu.Unlock()
	return s.n.nodes[to] != nil && !s.n.cut[to] && !s.n.cut[s.from]
}

func (s memSender) SendChunk(to uint64, data []byte) bool {
	return s.send(to, memMsg{snapGroup, s.from, append([]byte(nil), data...)})
}

func (s memSender) send(to uint64, m memMsg) bool {
	s.n.mu.Lock()
	mn := s.n.nodes[to]
	cut := s.n.cut[to] || s.n.cut[s.from]
	s.n.sent[m.group]++
	s.n.mu.Unlock()
	if mn == nil || cut {
		return false
	}
	select {
	case mn.in <- m:
		return true
	default:
		return false
	}
}

// recorder is a Handler that remembers what it was told.
type recorder struct {
	mu      sync.Mutex
	defs    map[store.QueueID][]byte
	serving map[store.QueueID]bool
	meta    []string // the keys MetaChanged was told of (meta_test.go)
	// unknown: Serving(true) calls for a queue not defined here
	unknown int
}

func newRecorder() *recorder {
	return &recorder{defs: make(map[store.QueueID][]byte), serving: make(map[store.QueueID]bool)}
}

func (r *recorder) DefineQueue(id store.QueueID, def []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.defs[id] = append([]byte(nil), def...)
	return nil
}

func (r *recorder) QueueDeleted(id store.QueueID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.defs, id)
}

func (r *recorder) Serving(id store.QueueID, serving bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.serving[id] = serving
	if _, ok := r.defs[id]; serving && !ok {
		r.unknown++
	}
}

func (r *recorder) def(id store.QueueID) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.defs[id]
}

func (r *recorder) isServing(id store.QueueID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.serving[id]
}

// testNode is one node of a test cluster: its store outlives its host, so
// a node can crash and restart on the same data.
type testNode struct {
	name string
	join bool // start it as joining a running cluster (Config.Join)
	// route: its store's metadata route, given before its host starts
	route func(store.Op) MetaRoute
	st    *memstore.MemStore
	// wrap, when set, is the store the host runs on, around st.
	wrap func(store.Store) store.Store
	h    *Host
	rec  *recorder
	rs   *Store
}

type testCluster struct {
	t     *testing.T
	net   *memNet
	cfg   Config
	nodes []*testNode
}

func newTestCluster(t *testing.T, n int) *testCluster {
	return newTestClusterWith(t, n, func(*Config) {})
}

func newTestClusterWith(t *testing.T, n int, set func(*Config)) *testCluster {
	c := &testCluster{t: t, net: newMemNet(t), cfg: DefaultConfig()}
	c.cfg.Tick = 10 * time.Millisecond
	set(&c.cfg)
	c.cfg.Nodes = make(map[string]string)
	for i := range n {
		c.cfg.Nodes[fmt.Sprintf("n%d", i+1)] = ""
	}
	for i := range n {
		tn := &testNode{name: fmt.Sprintf("n%d", i+1), st: memstore.New()}
		c.nodes = append(c.nodes, tn)
		c.start(tn)
	}
	return c
}

func (c *testCluster) start(tn *testNode) {
	cfg := c.cfg
	cfg.Node, cfg.Join = tn.name, tn.join
	var st store.Store = tn.st
	if tn.wrap != nil {
		st = tn.wrap(st)
	}
	h, err := New(cfg, st)
	if err != nil {
		c.t.Fatal(err)
	}
	tn.h, tn.rec, tn.rs = h, newRecorder(), NewStore(st, h, 5*time.Second)
	if tn.route != nil {
		tn.rs.ShareMeta(tn.route)
	}
	c.net.up(h)
	h.Start(memSender{c.net, h.Self()}, tn.rec)
}

// waitFor polls cond until it holds or a few seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// leader returns the live node serving q.
func (c *testCluster) leader(q store.QueueID, down ...*testNode) *testNode {
	c.t.Helper()
	var l *testNode
	waitFor(c.t, "a serving leader", func() bool {
		for _, tn := range c.nodes {
			if !containsNode(down, tn) && tn.rec.isServing(q) {
				if gs, ok := tn.h.QueueStatus(q); ok && gs.Serving {
					l = tn
					return true
				}
			}
		}
		return false
	})
	return l
}

func containsNode(ns []*testNode, n *testNode) bool {
	for _, x := range ns {
		if x == n {
			return true
		}
	}
	return false
}

func put(q store.QueueID, seqs ...uint64) *store.Batch {
	var b store.Batch
	for _, s := range seqs {
		b.PutIndexed(q, s, []byte(fmt.Sprintf("msg %d", s)), []byte{byte(s)})
	}
	return &b
}

// contents lists a queue's messages in a local store.
func contents(t *testing.T, st store.Store, q store.QueueID) []string {
	t.Helper()
	var out []string
	if err := st.Scan(q, 0, func(seq uint64, rec []byte) bool {
		out = append(out, fmt.Sprintf("%d=%s", seq, rec))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}
