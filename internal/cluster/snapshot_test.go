package cluster

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/store"
	"github.com/sluicemq/sluice/internal/store/memstore"
)

// queueState renders everything a member's store holds of a queue: its
// floor, messages with their index entries, states and delay entries.
func queueState(t *testing.T, st store.Store, q store.QueueID) string {
	t.Helper()
	var b strings.Builder
	floor, err := st.Floor(q)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "floor %d\n", floor)
	idx := map[uint64]string{}
	st.ScanIndex(q, floor, func(seq uint64, v []byte) bool { idx[seq] = string(v); return true })
	st.Scan(q, floor, func(seq uint64, rec []byte) bool {
		fmt.Fprintf(&b, "msg %d=%s idx %q\n", seq, rec, idx[seq])
		return true
	})
	st.ScanState(q, func(seq uint64, v []byte) bool { fmt.Fprintf(&b, "state %d=%s\n", seq, v); return true })
	st.ScanDelays(math.MinInt64, func(due int64, dq store.QueueID, seq uint64) bool {
		if dq == q {
			fmt.Fprintf(&b, "delay %d %d\n", due, seq)
		}
		return true
	})
	return b.String()
}

// writeLoad writes messages lo..hi to a queue through its leader, with
// states, delays, acks and a floor along the way, so that a snapshot has
// every kind of state to carry.
func writeLoad(t *testing.T, c *testCluster, q store.QueueID, lo, hi uint64, down ...*testNode) {
	t.Helper()
	for i := lo; i <= hi; i++ {
		b := put(q, i)
		switch i % 5 {
		case 1:
			b.PutState(q, i, []byte(fmt.Sprintf("st%d", i)))
		case 2:
			b.PutDelay(int64(1000+i), q, i)
		}
		if i%10 == 0 {
			b.DeleteMessage(q, i-1)
			b.DeleteState(q, i-4)
		}
		if i%25 == 0 {
			b.SetFloor(q, i-20)
		}
		c.write(b, down...)
	}
}

// write applies b through q's serving leader, again through the next one
// when leadership moves (a member that lost its store has the leader hand
// it on): b's ops set keys, so applying it twice is harmless.
func (c *testCluster) write(b *store.Batch, down ...*testNode) {
	c.t.Helper()
	q := b.Ops[0].Queue
	// Bounded by time, not attempts: a leader handing on its lead still
	// reports serving until the notifier has run, and refuses at once.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		l := c.leader(q, down...)
		err := l.rs.Apply(b, true)
		if err == nil {
			return
		}
		if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrTimeout) {
			c.t.Fatal(err)
		}
		if testing.Verbose() {
			c.t.Logf("%s: %v", l.name, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("no leader took the write of %d ops to %d (down %d)", len(b.Ops), q, len(down))
}

func logFirst(st store.Store, q store.QueueID) uint64 {
	first := uint64(0)
	st.Scan(logQueue(uint64(q)), 0, func(idx uint64, _ []byte) bool { first = idx; return false })
	return first
}

// Every member compacts its log below its applied index whether or not
// the others have the entries; a member that was down while the log
// moved past it catches up from a snapshot, and so does one whose store
// was lost; both end with the leader's queue, state for state.
func TestSnapshotCatchUp(t *testing.T) {
	c := newTestClusterWith(t, 3, func(cfg *Config) { cfg.CompactEntries = 10 })
	q := NewQueueID()
	if err := c.nodes[0].h.CreateQueue(ctx(t), q, []byte("def"), nil); err != nil {
		t.Fatal(err)
	}
	l := c.leader(q)
	var followers []*testNode
	for _, tn := range c.nodes {
		if tn != l {
			followers = append(followers, tn)
		}
	}
	lagging, wiped := followers[0], followers[1]
	writeLoad(t, c, q, 1, 30)
	c.net.down(lagging.h.Self())
	c.net.down(wiped.h.Self())
	// With two of three down nothing commits: bring the wiped one back
	// on an empty store first, then write on while the other is down.
	wiped.st, wiped.join = memstore.New(), true
	c.start(wiped)
	writeLoad(t, c, q, 31, 150, lagging)
	l = c.leader(q, lagging)
	waitFor(t, "the leader compacts past the down member", func() bool {
		_, heldAt := logBounds(lagging, q)
		return logFirst(l.st, q) > heldAt+1
	})
	c.start(lagging)
	l = c.leader(q)
	want := queueState(t, l.st, q)
	for _, tn := range followers {
		waitFor(t, tn.name+" holds the leader's queue", func() bool { return queueState(t, tn.st, q) == want })
		waitFor(t, tn.name+" defines the queue", func() bool { return string(tn.rec.def(q)) == "def" })
	}
	// The members go on from the log after the snapshot, and the queue
	// survives the failover to one that caught up by snapshot.
	writeLoad(t, c, q, 151, 160)
	l = c.leader(q)
	c.net.down(l.h.Self())
	nl := c.leader(q, l)
	writeLoad(t, c, q, 161, 170, l)
	c.start(l)
	want = queueState(t, nl.st, q)
	for _, tn := range c.nodes {
		waitFor(t, tn.name+" converges after the failover", func() bool { return queueState(t, tn.st, q) == want })
	}
	if !strings.Contains(want, "msg 170=msg 170") || !strings.Contains(want, "delay 1157 157") {
		t.Fatalf("queue lacks recent writes:\n%s", want)
	}
}

// A group's snapshot travels in many bounded chunks, and a restart of the
// receiving member on its store after the install keeps the state.
func TestSnapshotChunksAndRestart(t *testing.T) {
	c := newTestClusterWith(t, 3, func(cfg *Config) { cfg.CompactEntries = 5 })
	q := NewQueueID()
	if err := c.nodes[0].h.CreateQueue(ctx(t), q, []byte("def"), nil); err != nil {
		t.Fatal(err)
	}
	l := c.leader(q)
	var f *testNode
	for _, tn := range c.nodes {
		if tn != l {
			f = tn
			break
		}
	}
	c.net.down(f.h.Self())
	body := strings.Repeat("x", 100<<10)
	for i := uint64(1); i <= 40; i++ {
		var b store.Batch
		b.PutIndexed(q, i, []byte(fmt.Sprintf("%d %s", i, body)), []byte{byte(i)})
		if err := l.rs.Apply(&b, true); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "compaction", func() bool { return logFirst(l.st, q) > 20 })
	f.st, f.join = memstore.New(), true
	c.start(f)
	l = c.leader(q)
	want := queueState(t, l.st, q)
	waitFor(t, f.name+" installs the snapshot", func() bool { return queueState(t, f.st, q) == want })
	c.net.down(f.h.Self())
	c.start(f)
	if got := queueState(t, f.st, q); got != want {
		t.Fatalf("state after restart differs")
	}
	c.write(put(q, 41))
	waitFor(t, f.name+" applies after the restart", func() bool {
		return slices.Contains(contents(t, f.st, q), "41=msg 41")
	})
}

// Over loopback TCP: a follower whose store is lost rejoins empty and
// catches up from a snapshot streamed by the leader, with the leader's
// queue contents.
func TestTCPWipedFollowerCatchesUp(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Tick = 10 * time.Millisecond
	cfg.CompactEntries = 10
	cfg.Nodes = map[string]string{"n1": freeAddr(t), "n2": freeAddr(t), "n3": freeAddr(t)}
	nodes := make(map[string]*tcpNode)
	join := false
	start := func(name string, st *memstore.MemStore) {
		c := cfg
		c.Node, c.Join = name, join
		nodes[name] = startTCPNode(t, c, st)
	}
	for _, name := range []string{"n1", "n2", "n3"} {
		start(name, memstore.New())
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.stop()
		}
	})
	q := NewQueueID()
	if err := nodes["n1"].h.CreateQueue(ctx(t), q, []byte("def"), nil); err != nil {
		t.Fatal(err)
	}
	leader := func() *tcpNode {
		var l *tcpNode
		waitFor(t, "a serving leader", func() bool {
			for _, n := range nodes {
				if gs, ok := n.h.QueueStatus(q); ok && gs.Serving {
					l = n
					return true
				}
			}
			return false
		})
		return l
	}
	write := func(lo, hi uint64) {
		for i := lo; i <= hi; i++ {
			for try := 0; ; try++ {
				err := leader().rs.Apply(put(q, i), true)
				if err == nil {
					break
				}
				if try == 20 || !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrTimeout) {
					t.Fatal(err)
				}
			}
		}
	}
	write(1, 40)
	var victim string
	for name, n := range nodes {
		if n != leader() {
			victim = name
			break
		}
	}
	nodes[victim].stop()
	delete(nodes, victim)
	write(41, 120)
	l := leader()
	waitFor(t, "compaction", func() bool { return logFirst(l.st, q) > 40 })
	join = true
	start(victim, memstore.New())
	var want []string
	for i := 1; i <= 120; i++ {
		want = append(want, fmt.Sprintf("%d=msg %d", i, i))
	}
	waitFor(t, victim+" catches up", func() bool { return slices.Equal(contents(t, nodes[victim].st, q), want) })
	waitFor(t, victim+" defines the queue", func() bool { return string(nodes[victim].rec.def(q)) == "def" })
	write(121, 125)
	want = append(want, "121=msg 121", "122=msg 122", "123=msg 123", "124=msg 124", "125=msg 125")
	waitFor(t, victim+" follows the log", func() bool { return slices.Equal(contents(t, nodes[victim].st, q), want) })
}

// gatedStore holds the batches that copy a snapshot's stage of
// group q into its queue (while the install mark is stored) until open is
// closed, telling held when the first is held.
type gatedStore struct {
	store.Store
	q    store.QueueID
	held chan struct{}
	once sync.Once
	open chan struct{}
}

func (s *gatedStore) Apply(b *store.Batch, sync bool) error {
	if slices.ContainsFunc(b.Ops, func(op store.Op) bool { return op.Queue == s.q && op.Kind == store.OpPutMessage }) {
		if _, err := s.GetMeta(groupKey(uint64(s.q), "install")); err == nil {
			s.once.Do(func() { close(s.held) })
			<-s.open
		}
	}
	return s.Store.Apply(b, sync)
}

// Installing a snapshot copies its stage off the node's Raft loop: while
// the copy of one queue is held up, the node's other groups go on
// applying; once it ends, the queue holds the leader's state and follows
// the log after the snapshot.
func TestSnapshotInstallOffTheLoop(t *testing.T) {
	c := newTestClusterWith(t, 3, func(cfg *Config) { cfg.CompactEntries = 10 })
	q, other := NewQueueID(), NewQueueID()
	for _, id := range []store.QueueID{q, other} {
		if err := c.nodes[0].h.CreateQueue(ctx(t), id, []byte("def"), nil); err != nil {
			t.Fatal(err)
		}
	}
	var lagging *testNode
	for _, tn := range c.nodes {
		if tn != c.leader(q) {
			lagging = tn
		}
	}
	writeLoad(t, c, q, 1, 20)
	c.net.down(lagging.h.Self())
	writeLoad(t, c, q, 21, 120, lagging)
	l := c.leader(q, lagging)
	waitFor(t, "the leader compacts past the down member", func() bool {
		_, heldAt := logBounds(lagging, q)
		return logFirst(l.st, q) > heldAt+1
	})
	gate := &gatedStore{q: q, held: make(chan struct{}), open: make(chan struct{})}
	release := sync.OnceFunc(func() { close(gate.open) })
	t.Cleanup(release) // before the hosts stop, should the test fail with the copy held
	lagging.wrap = func(st store.Store) store.Store { gate.Store = st; return gate }
	c.start(lagging)
	select {
	case <-gate.held:
	case <-time.After(10 * time.Second):
		t.Fatal("no snapshot install began")
	}
	c.write(put(other, 1), lagging)
	waitFor(t, "another group applies on the installing node", func() bool {
		return len(contents(t, lagging.st, other)) == 1
	})
	if got := contents(t, lagging.st, q); len(got) != 0 {
		// Its old state is dropped and the copy is held: nothing yet.
		t.Fatalf("the installing queue holds %d messages mid-copy", len(got))
	}
	release()
	writeLoad(t, c, q, 121, 130)
	want := queueState(t, c.leader(q).st, q)
	waitFor(t, "the installed queue converges", func() bool { return queueState(t, lagging.st, q) == want })
	waitFor(t, "the installing node defines the queue", func() bool { return string(lagging.rec.def(q)) == "def" })
}
