package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/store"
	"github.com/sluicemq/sluice/internal/store/memstore"
)

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type tcpNode struct {
	st  *memstore.MemStore
	h   *Host
	tr  *TCPTransport
	rec *recorder
	rs  *Store
}

func startTCPNode(t *testing.T, cfg Config, st *memstore.MemStore) *tcpNode {
	t.Helper()
	h, err := New(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTCPTransport(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	n := &tcpNode{st: st, h: h, tr: tr, rec: newRecorder(), rs: NewStore(st, h, 5*time.Second)}
	h.Start(tr, n.rec)
	return n
}

func (n *tcpNode) stop() {
	n.h.Stop()
	n.tr.Close()
}

// Three hosts over loopback TCP: a queue created on one is replicated to
// all; when its leader's process goes away, the others elect a new one,
// which holds every confirmed write; the old leader rejoins on its data.
func TestTCPTransportFailover(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Tick = 10 * time.Millisecond
	cfg.Nodes = map[string]string{"n1": freeAddr(t), "n2": freeAddr(t), "n3": freeAddr(t)}
	names := []string{"n1", "n2", "n3"}
	nodes := make(map[string]*tcpNode)
	for _, name := range names {
		c := cfg
		c.Node = name
		nodes[name] = startTCPNode(t, c, memstore.New())
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.stop()
		}
	})
	waitFor(t, "connections", func() bool {
		return nodes["n1"].tr.Connected("n2") && nodes["n1"].tr.Connected("n3") && nodes["n2"].tr.Connected("n3")
	})
	q := NewQueueID()
	if err := nodes["n2"].h.CreateQueue(ctx(t), q, []byte("def"), nil); err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 50; i++ {
		if err := nodes["n2"].rs.Apply(put(q, i), true); err != nil {
			t.Fatal(err)
		}
	}
	nodes["n2"].stop()
	dead := nodes["n2"]
	delete(nodes, "n2")

	var leader *tcpNode
	waitFor(t, "a new leader", func() bool {
		for _, n := range nodes {
			if gs, ok := n.h.QueueStatus(q); ok && gs.Serving {
				leader = n
				return true
			}
		}
		return false
	})
	if got := len(contents(t, leader.st, q)); got != 50 {
		t.Fatalf("new leader holds %d messages, want 50", got)
	}
	if err := leader.rs.Apply(put(q, 51), true); err != nil {
		t.Fatal(err)
	}
	c := cfg
	c.Node = "n2"
	nodes["n2"] = startTCPNode(t, c, dead.st)
	var want []string
	for i := 1; i <= 51; i++ {
		want = append(want, fmt.Sprintf("%d=msg %d", i, i))
	}
	for name, n := range nodes {
		waitFor(t, name+" converges", func() bool { return slices.Equal(contents(t, n.st, q), want) })
	}
}

// SetNodes connects a transport to nodes added at run time and drops the
// connection to a node removed.
func TestTCPTransportSetNodes(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Tick = 10 * time.Millisecond
	all := map[string]string{"n1": freeAddr(t), "n2": freeAddr(t), "n3": freeAddr(t)}
	two := map[string]string{"n1": all["n1"], "n2": all["n2"]}
	var nodes []*tcpNode
	for _, name := range []string{"n1", "n2", "n3"} {
		c := cfg
		c.Node, c.Nodes, c.Join = name, two, name == "n3"
		if name == "n3" {
			c.Nodes = all
		}
		nodes = append(nodes, startTCPNode(t, c, memstore.New()))
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.stop()
		}
	})
	waitFor(t, "n1-n2", func() bool { return nodes[0].tr.Connected("n2") })
	if nodes[0].tr.Connected("n3") {
		t.Fatal("n1 connected to n3 before knowing it")
	}
	nodes[0].tr.SetNodes(all)
	nodes[1].tr.SetNodes(all)
	waitFor(t, "n3 connected", func() bool {
		return nodes[0].tr.Connected("n3") && nodes[1].tr.Connected("n3") && nodes[2].tr.Connected("n1")
	})
	nodes[0].tr.SetNodes(two)
	waitFor(t, "n1 drops n3", func() bool { return !nodes[0].tr.Connected("n3") && !nodes[2].tr.Connected("n1") })
	if !nodes[0].tr.Connected("n2") {
		t.Fatal("n1 lost n2")
	}
}

// A message just over 64 MiB (the broker takes up to 128 MiB by default)
// replicates over loopback TCP in one entry; an entry over the frame limit
// is refused at the proposal instead of stalling the group.
func TestTCPTransportLargeMessage(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Tick = 10 * time.Millisecond
	cfg.ElectionTicks = 500 // 5 s: a 64 MiB copy under -race on a loaded machine holds the loop a while
	cfg.Nodes = map[string]string{"n1": freeAddr(t), "n2": freeAddr(t)}
	nodes := make(map[string]*tcpNode)
	for _, name := range []string{"n1", "n2"} {
		c := cfg
		c.Node = name
		n := startTCPNode(t, c, memstore.New())
		n.rs = NewStore(n.st, n.h, time.Minute) // copies of 64 MiB under -race on a loaded machine
		nodes[name] = n
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.stop()
		}
	})
	waitFor(t, "connections", func() bool { return nodes["n1"].tr.Connected("n2") })
	q := NewQueueID()
	if err := nodes["n1"].h.CreateQueue(ctx(t), q, []byte("def"), nil); err != nil {
		t.Fatal(err)
	}
	leader := nodes["n1"]
	waitFor(t, "a leader", func() bool { gs, _ := leader.h.QueueStatus(q); return gs.Serving })
	body := make([]byte, 64<<20+1024)
	for i := range body {
		body[i] = byte(i)
	}
	var b store.Batch
	b.PutIndexed(q, 1, body, []byte{1})
	if err := leader.rs.Apply(&b, true); err != nil {
		t.Fatalf("replicate a message of %d bytes: %v", len(body), err)
	}
	waitFor(t, "the follower applies the message", func() bool {
		rec, err := nodes["n2"].st.Get(q, 1)
		return err == nil && bytes.Equal(rec, body)
	})

	var huge store.Batch
	huge.PutIndexed(q, 2, make([]byte, leader.h.maxEntry()+1), []byte{2})
	if err := leader.rs.Apply(&huge, true); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("an entry over the frame limit: got %v, want ErrTooLarge", err)
	}
	if err := leader.rs.Apply(put(q, 3), true); err != nil {
		t.Fatalf("the group after a refused entry: %v", err)
	}
}
