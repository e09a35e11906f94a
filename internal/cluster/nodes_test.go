package cluster

import (
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/sluicemq/sluice/internal/store/memstore"
)

// Adding a node at run time: it joins (Config.Join), gets the node list
// and every queue as a learner, and a queue grown onto it catches up.
// Removing it takes it out of every group and the list. A node restarted
// with its first configuration keeps the list it stored.
func TestAddAndRemoveNode(t *testing.T) {
	c := newTestClusterWith(t, 3, func(cfg *Config) { cfg.CompactEntries = 10 })
	q := NewQueueID()
	if err := c.nodes[0].h.CreateQueue(ctx(t), q, []byte("def"), nil); err != nil {
		t.Fatal(err)
	}
	writeLoad(t, c, q, 1, 60)
	if err := c.nodes[1].h.AddNode(ctx(t), "n4", "addr4"); err != nil {
		t.Fatal(err)
	}
	for _, tn := range c.nodes {
		waitFor(t, tn.name+" lists n4", func() bool { return tn.h.Nodes()["n4"] == "addr4" })
	}
	n4 := &testNode{name: "n4", st: memstore.New(), join: true}
	c.nodes = append(c.nodes, n4)
	cfg := c.cfg
	c.cfg.Nodes = maps.Clone(cfg.Nodes)
	c.cfg.Nodes["n4"] = "addr4"
	c.start(n4)
	waitFor(t, "n4 defines the queue", func() bool { return string(n4.rec.def(q)) == "def" })
	waitFor(t, "n4 has the node list", func() bool { return len(n4.h.Nodes()) == 4 })
	if err := n4.h.AddMember(ctx(t), q, "n4"); err != nil {
		t.Fatal(err)
	}
	l := c.leader(q)
	want := queueState(t, l.st, q)
	waitFor(t, "n4 catches up", func() bool { return queueState(t, n4.st, q) == want })
	if got := members(t, c.nodes[0], q); !slices.Equal(got, []string{"n1", "n2", "n3", "n4"}) {
		t.Fatalf("members %v", got)
	}

	// A restart with the first list keeps n4.
	c.net.down(c.nodes[2].h.Self())
	c.cfg = cfg
	c.start(c.nodes[2])
	if got := c.nodes[2].h.Nodes(); got["n4"] != "addr4" {
		t.Fatalf("after a restart with the old list: %v", got)
	}

	if err := c.nodes[0].h.RemoveNode(ctx(t), "n1"); !errors.Is(err, ErrSelf) {
		t.Fatalf("removing itself: %v", err)
	}
	if err := c.nodes[0].h.RemoveNode(ctx(t), "n9"); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("removing an unknown node: %v", err)
	}
	if err := c.nodes[0].h.AddNode(ctx(t), "n4", "elsewhere"); !errors.Is(err, ErrBadNode) {
		t.Fatalf("moving a node: %v", err)
	}
	if err := c.nodes[0].h.RemoveNode(ctx(t), "n4"); err != nil {
		t.Fatal(err)
	}
	for _, tn := range c.nodes[:3] {
		waitFor(t, tn.name+" drops n4", func() bool { _, ok := tn.h.Nodes()["n4"]; return !ok })
		waitFor(t, tn.name+" sees n4 out of the queue", func() bool {
			return slices.Equal(members(t, tn, q), []string{"n1", "n2", "n3"})
		})
	}
	writeLoad(t, c, q, 61, 70, n4)
	// n4's store says it was removed (or it never heard): either way it
	// cannot start as a member again with that store.
	c.net.down(n4.h.Self())
	c.cfg.Nodes["n4"] = "addr4"
	if _, ok := n4.h.Nodes()["n4"]; !ok {
		n4cfg := c.cfg
		n4cfg.Node = "n4"
		if _, err := New(n4cfg, n4.st); err == nil {
			t.Fatal("a removed node started again on its store")
		}
	}
}

// Two nodes adding a node each at the same moment: both additions hold,
// on every node (the list's entries are changes applied in log order).
func TestConcurrentAddNodes(t *testing.T) {
	c := newTestCluster(t, 3)
	adds := map[string]string{"n4": "addr4", "n5": "addr5"}
	errs := make(chan error, 2)
	for i, name := range []string{"n4", "n5"} {
		go func() { errs <- c.nodes[i].h.AddNode(ctx(t), name, adds[name]) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, tn := range c.nodes {
		waitFor(t, tn.name+" lists n4 and n5", func() bool {
			nodes := tn.h.Nodes()
			return len(nodes) == 5 && nodes["n4"] == "addr4" && nodes["n5"] == "addr5"
		})
	}
	if err := c.nodes[2].h.RemoveNode(ctx(t), "n5"); err != nil {
		t.Fatal(err)
	}
	for _, tn := range c.nodes {
		waitFor(t, tn.name+" drops n5", func() bool {
			nodes := tn.h.Nodes()
			return len(nodes) == 4 && nodes["n4"] == "addr4"
		})
	}
}

// An entry of an earlier version, carrying the whole list, still applies,
// and a change after it applies to it.
func TestNodeListOldEntries(t *testing.T) {
	c := newTestCluster(t, 3)
	old := map[string]string{"n1": "", "n2": "", "n3": "", "n6": "addr6"}
	waitFor(t, "the old entry commits", func() bool { // once the group has a leader
		return c.nodes[0].h.proposeCmd(ctx(t), nodesGroup, cmdNodes, encodeNodes(old)) == nil
	})
	if err := c.nodes[1].h.proposeNodes(ctx(t), nodeChange{add: true, name: "n7", addr: "addr7", seen: map[string]string{"n1": "", "n7": "addr7"}}); err != nil {
		t.Fatal(err)
	}
	for _, tn := range c.nodes {
		waitFor(t, tn.name+" applies both", func() bool {
			nodes := tn.h.Nodes()
			return len(nodes) == 5 && nodes["n6"] == "addr6" && nodes["n7"] == "addr7"
		})
	}
}
