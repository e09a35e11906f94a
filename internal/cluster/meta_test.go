package cluster

import (
	"bytes"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sluicemq/sluice/internal/store"
	"github.com/sluicemq/sluice/internal/store/memstore"
)

func (r *recorder) MetaChanged(keys []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.meta = append(r.meta, keys...)
}

func (r *recorder) metaKeys() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.meta)
}

// testRoute shares "s/" keys and creates "c/" keys once.
func testRoute(op store.Op) MetaRoute {
	switch {
	case strings.HasPrefix(op.Key, "s/"):
		return MetaShared
	case strings.HasPrefix(op.Key, "c/"):
		return MetaCreate
	}
	return MetaLocal
}

func newMetaCluster(t *testing.T) *testCluster {
	c := newTestCluster(t, 3)
	for _, tn := range c.nodes {
		tn.rs.ShareMeta(testRoute)
	}
	return c
}

func metaOf(t *testing.T, st store.Store, key string) string {
	t.Helper()
	v, err := st.GetMeta(key)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(v)
}

// A shared metadata write on one node is in every node's store when it
// returns on a majority and reaches the others; the other nodes' handlers
// hear of it, the writer's does not (its broker made it); a node-local
// key and a classic queue's message stay on the writer.
func TestMetaWriteReachesEveryNode(t *testing.T) {
	c := newMetaCluster(t)
	w := c.nodes[0]
	var b store.Batch
	b.PutMeta("s/vhost", []byte("v1"))
	b.PutMeta("local", []byte("mine"))
	b.PutMessage(7, 1, []byte("classic"))
	if err := w.rs.Apply(&b, true); err != nil {
		t.Fatal(err)
	}
	if got := metaOf(t, w.st, "s/vhost"); got != "v1" {
		t.Fatalf("writer holds %q after its write returned", got)
	}
	for _, tn := range c.nodes[1:] {
		waitFor(t, tn.name+" hears of the write", func() bool { return slices.Contains(tn.rec.metaKeys(), "s/vhost") })
		if got := metaOf(t, tn.st, "s/vhost"); got != "v1" {
			t.Errorf("%s holds %q", tn.name, got)
		}
		if _, err := tn.st.GetMeta("local"); err == nil {
			t.Errorf("%s got the writer's local key", tn.name)
		}
		if n := len(contents(t, tn.st, 7)); n != 0 {
			t.Errorf("%s got the writer's classic message", tn.name)
		}
	}
	if keys := w.rec.metaKeys(); len(keys) != 0 {
		t.Errorf("the writer's handler was told of its own write: %v", keys)
	}
	// A delete goes the same way.
	var d store.Batch
	d.DeleteMeta("s/vhost")
	if err := c.nodes[1].rs.Apply(&d, false); err != nil {
		t.Fatal(err)
	}
	for _, tn := range c.nodes {
		waitFor(t, tn.name+" deletes", func() bool { _, err := tn.st.GetMeta("s/vhost"); return err != nil })
	}
}

// Two nodes creating one key with different values at once: every node
// ends with the same value, the first in the log; the loser's handler is
// told, so its broker reloads the winner's definition.
func TestMetaCreateFirstWins(t *testing.T) {
	c := newMetaCluster(t)
	var wg sync.WaitGroup
	for i, tn := range c.nodes[:2] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b store.Batch
			b.PutMeta("c/x", []byte{byte('a' + i)})
			if err := tn.rs.Apply(&b, true); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	win := metaOf(t, c.nodes[0].st, "c/x")
	for _, tn := range c.nodes {
		waitFor(t, tn.name+" agrees", func() bool { return metaOf(t, tn.st, "c/x") == win })
	}
	loser := c.nodes[0]
	if win == "a" {
		loser = c.nodes[1]
	}
	// Told from the notifier, maybe after its write returned.
	waitFor(t, "the losing node "+loser.name+" is told", func() bool { return slices.Contains(loser.rec.metaKeys(), "c/x") })
	// The same value again passes (a redeclaration), another is skipped.
	for _, v := range []string{win, "z"} {
		var b store.Batch
		b.PutMeta("c/x", []byte(v))
		if err := c.nodes[2].rs.Apply(&b, true); err != nil {
			t.Fatal(err)
		}
		if got := metaOf(t, c.nodes[2].st, "c/x"); got != win {
			t.Fatalf("after creating %q: %q, want %q", v, got, win)
		}
	}
}

// A node that was down, or whose store is empty, gets the metadata from
// the group's log; a write made while a minority is down succeeds.
func TestMetaCatchUpFromLog(t *testing.T) {
	c := newMetaCluster(t)
	gone := c.nodes[2]
	c.net.down(gone.h.Self())
	var b0 store.Batch
	b0.PutMeta("s/missed", []byte("m"))
	if err := c.nodes[0].rs.Apply(&b0, true); err != nil {
		t.Fatal(err)
	}
	c.start(gone) // on its own store: it replays what it missed
	gone.rs.ShareMeta(testRoute)
	waitFor(t, "the restarted node catches up", func() bool { return metaOf(t, gone.st, "s/missed") == "m" })
	// Told from the notifier, after the apply the store shows.
	waitFor(t, "the restarted node's handler is told", func() bool { return slices.Contains(gone.rec.metaKeys(), "s/missed") })
	c.net.down(gone.h.Self())
	var b store.Batch
	b.PutMeta("s/user", []byte("alice"))
	if err := c.nodes[0].rs.Apply(&b, true); err != nil {
		t.Fatal(err)
	}
	gone.st = memstore.New() // its disk is lost
	c.start(gone)
	gone.rs.ShareMeta(testRoute)
	waitFor(t, "the empty node replays the log", func() bool { return metaOf(t, gone.st, "s/user") == "alice" })
	if !slices.Contains(gone.rec.metaKeys(), "s/user") {
		t.Error("the replaying node's handler was not told")
	}
	// And it can write again itself.
	var b2 store.Batch
	b2.PutMeta("s/user2", []byte("bob"))
	if err := gone.rs.Apply(&b2, true); err != nil {
		t.Fatal(err)
	}
	for _, tn := range c.nodes {
		waitFor(t, tn.name+" has bob", func() bool { return bytes.Equal([]byte(metaOf(t, tn.st, "s/user2")), []byte("bob")) })
	}
}

// A node added at run time becomes a voter of the metadata group, gets
// the metadata written before it joined and writes its own; a removed
// node leaves the group.
func TestMetaAddedNode(t *testing.T) {
	c := newMetaCluster(t)
	var b store.Batch
	b.PutMeta("s/early", []byte("1"))
	if err := c.nodes[0].rs.Apply(&b, true); err != nil {
		t.Fatal(err)
	}
	if err := c.nodes[1].h.AddNode(ctx(t), "n4", "addr4"); err != nil {
		t.Fatal(err)
	}
	n4 := &testNode{name: "n4", st: memstore.New(), join: true}
	c.nodes = append(c.nodes, n4)
	c.cfg.Nodes = maps.Clone(c.cfg.Nodes)
	c.cfg.Nodes["n4"] = "addr4"
	c.start(n4)
	n4.rs.ShareMeta(testRoute)
	waitFor(t, "n4 replays the metadata", func() bool { return metaOf(t, n4.st, "s/early") == "1" })
	var b2 store.Batch
	b2.PutMeta("s/late", []byte("2"))
	if err := n4.rs.Apply(&b2, true); err != nil {
		t.Fatal(err)
	}
	for _, tn := range c.nodes {
		waitFor(t, tn.name+" has n4's write", func() bool { return metaOf(t, tn.st, "s/late") == "2" })
	}
	metaMembers := func(tn *testNode) []string {
		gs, _ := tn.h.QueueStatus(store.QueueID(MetaGroup))
		return gs.Members
	}
	if got := metaMembers(c.nodes[0]); !slices.Equal(got, []string{"n1", "n2", "n3", "n4"}) {
		t.Fatalf("metadata group members %v", got)
	}
	if err := c.nodes[0].h.RemoveNode(ctx(t), "n4"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n4 out of the metadata group", func() bool {
		return slices.Equal(metaMembers(c.nodes[0]), []string{"n1", "n2", "n3"})
	})
}
