package cluster

import (
	"errors"
	"slices"
	"testing"

	"github.com/sluicemq/sluice/internal/store"
)

func TestCreateQueueDefinesOnEveryMember(t *testing.T) {
	c := newTestCluster(t, 3)
	q := NewQueueID()
	if err := c.nodes[0].h.CreateQueue(ctx(t), q, []byte("def"), nil); err != nil {
		t.Fatal(err)
	}
	for _, tn := range c.nodes {
		waitFor(t, tn.name+" defines the queue", func() bool { return string(tn.rec.def(q)) == "def" })
	}
	l := c.leader(q)
	if l != c.nodes[0] {
		t.Errorf("leader %s, want the creator n1", l.name)
	}
	gs, _ := c.nodes[2].h.QueueStatus(q)
	if want := []string{"n1", "n2", "n3"}; !slices.Equal(gs.Members, want) {
		t.Errorf("members %v, want %v", gs.Members, want)
	}
	waitFor(t, "n3 knows the leader", func() bool { gs, _ := c.nodes[2].h.QueueStatus(q); return gs.Leader == "n1" })
}

// Every node declaring one queue at the same moment creates one group:
// the id comes from the name, each node bootstraps the same membership,
// and all of them return with the one definition that won.
func TestConcurrentCreateMakesOneGroup(t *testing.T) {
	c := newTestCluster(t, 3)
	q := QueueID("/", "same")
	if q != QueueID("/", "same") || q == QueueID("/", "other") || q == QueueID("/same", "") || !Replicated(q) {
		t.Fatalf("QueueID is not a deterministic replicated id per vhost and name")
	}
	errs := make(chan error, len(c.nodes))
	for _, tn := range c.nodes {
		go func() { errs <- tn.h.CreateQueue(ctx(t), q, []byte("def-"+tn.name), nil) }()
	}
	for range c.nodes {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	l := c.leader(q)
	for _, tn := range c.nodes {
		waitFor(t, tn.name+" holds the leader's definition", func() bool {
			want := l.rec.def(q)
			return want != nil && string(tn.rec.def(q)) == string(want)
		})
	}
	if err := l.rs.Apply(put(q, 1), true); err != nil {
		t.Fatal(err)
	}
	for _, tn := range c.nodes {
		waitFor(t, tn.name+" applies the write", func() bool { return len(contents(t, tn.st, q)) == 1 })
	}
}

// A write a leader confirmed is on a majority; after the leader dies the
// new one holds it, serves, and the old one catches up when it returns.
func TestLeaderKillKeepsConfirmedWrites(t *testing.T) {
	c := newTestCluster(t, 3)
	q := NewQueueID()
	if err := c.nodes[0].h.CreateQueue(ctx(t), q, []byte("def"), nil); err != nil {
		t.Fatal(err)
	}
	l := c.leader(q)
	if err := l.rs.Apply(put(q, 1, 2, 3), true); err != nil {
		t.Fatal(err)
	}
	// A follower refuses writes: only the leader's broker assigns seqs.
	var follower *testNode
	for _, tn := range c.nodes {
		if tn != l {
			follower = tn
			break
		}
	}
	if err := follower.rs.Apply(put(q, 9), true); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("follower write: %v, want ErrNotLeader", err)
	}

	c.net.down(l.h.Self())
	l2 := c.leader(q, l)
	if got := contents(t, l2.st, q); len(got) != 3 {
		t.Fatalf("new leader %s holds %v, want 3 messages", l2.name, got)
	}
	var b store.Batch
	b.DeleteMessage(q, 1)
	b.Append(put(q, 4))
	if err := l2.rs.Apply(&b, false); err != nil {
		t.Fatal(err)
	}

	c.start(l) // restart on the same store: it replays and catches up
	want := []string{"2=msg 2", "3=msg 3", "4=msg 4"}
	for _, tn := range c.nodes {
		waitFor(t, tn.name+" converges", func() bool { return slices.Equal(contents(t, tn.st, q), want) })
	}
}

// One node's batch touching a replicated queue and a local one: the local
// part stays local, the replicated part reaches every member.
func TestStoreSplitsLocalAndReplicated(t *testing.T) {
	c := newTestCluster(t, 3)
	q := NewQueueID()
	if err := c.nodes[0].h.CreateQueue(ctx(t), q, []byte("def"), nil); err != nil {
		t.Fatal(err)
	}
	l := c.leader(q)
	b := put(q, 1)
	b.Append(put(7, 1))
	b.PutMeta("k", []byte("v"))
	wait, err := l.rs.ApplyAsync(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	for _, tn := range c.nodes {
		waitFor(t, tn.name+" has the replicated message", func() bool { return len(contents(t, tn.st, q)) == 1 })
		local := len(contents(t, tn.st, 7))
		_, merr := tn.st.GetMeta("k")
		if tn == l && (local != 1 || merr != nil) {
			t.Errorf("leader lost its local part: %d messages, meta %v", local, merr)
		}
		if tn != l && (local != 0 || merr == nil) {
			t.Errorf("%s got the leader's local part", tn.name)
		}
	}
}

func logBounds(tn *testNode, q store.QueueID) (first, last uint64) {
	first, last = 0, 0
	tn.st.Scan(logQueue(uint64(q)), 0, func(idx uint64, _ []byte) bool {
		if first == 0 {
			first = idx
		}
		last = idx
		return true
	})
	return first, last
}

// Deleting a queue drops its messages on every member; the group stays,
// and creating the queue again defines it anew there.
func TestDeleteQueueOnEveryMember(t *testing.T) {
	c := newTestCluster(t, 3)
	q := QueueID("/", "gone")
	if err := c.nodes[0].h.CreateQueue(ctx(t), q, []byte("def"), nil); err != nil {
		t.Fatal(err)
	}
	l := c.leader(q)
	if err := l.rs.Apply(put(q, 1, 2), true); err != nil {
		t.Fatal(err)
	}
	if err := l.h.DeleteQueue(ctx(t), q); err != nil {
		t.Fatal(err)
	}
	for _, tn := range c.nodes {
		waitFor(t, tn.name+" deletes the queue", func() bool {
			return tn.rec.def(q) == nil && len(contents(t, tn.st, q)) == 0
		})
	}
	if err := c.nodes[1].h.CreateQueue(ctx(t), q, []byte("def2"), nil); err != nil {
		t.Fatal(err)
	}
	for _, tn := range c.nodes {
		waitFor(t, tn.name+" defines the queue again", func() bool { return string(tn.rec.def(q)) == "def2" })
	}
}
