package cluster

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sluicemq/sluice/internal/store"
	"github.com/sluicemq/sluice/internal/store/memstore"
)

// sharedMeta renders the shared keys ("s/", "c/") of a store.
func sharedMeta(t *testing.T, st store.Store) string {
	t.Helper()
	var b strings.Builder
	if err := st.ScanMeta("", func(key string, v []byte) bool {
		if testRoute(store.Op{Kind: store.OpPutMeta, Key: key}) != MetaLocal {
			fmt.Fprintf(&b, "%s=%s\n", key, v)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// The metadata group's log is compacted like a queue group's; a member
// that was down while it moved on, and one whose store was lost, catch up
// from a snapshot of the shared keys: a key deleted meanwhile goes, a
// node-local key stays, the handler hears of every key the install
// changed, and the members go on from the log after it.
func TestMetaSnapshotCatchUp(t *testing.T) {
	c := newTestClusterWith(t, 3, func(cfg *Config) { cfg.CompactEntries = 5 })
	for _, tn := range c.nodes {
		tn.route = testRoute
		tn.rs.ShareMeta(testRoute)
	}
	meta := store.QueueID(MetaGroup)
	write := func(tn *testNode, fn func(b *store.Batch)) {
		t.Helper()
		var b store.Batch
		fn(&b)
		if err := tn.rs.Apply(&b, true); err != nil {
			t.Fatal(err)
		}
	}
	w, lagging, wiped := c.nodes[0], c.nodes[1], c.nodes[2]
	snapshotted := func(tn *testNode, after uint64) {
		t.Helper()
		trunc, err := tn.st.GetMeta(groupKey(MetaGroup, "trunc"))
		if err != nil || binary.BigEndian.Uint64(trunc) <= after {
			t.Fatalf("%s's metadata log starts after %x (%v), it held %d: it replayed the log, no snapshot", tn.name, trunc, err, after)
		}
	}
	converge := func(tns ...*testNode) string {
		t.Helper()
		want := sharedMeta(t, w.st)
		for _, tn := range tns {
			waitFor(t, tn.name+" holds the writer's metadata", func() bool { return sharedMeta(t, tn.st) == want })
		}
		return want
	}
	write(w, func(b *store.Batch) { b.PutMeta("s/doomed", []byte("x")); b.PutMeta("c/kept", []byte("first")) })
	for i := range 30 {
		write(w, func(b *store.Batch) { b.PutMeta(fmt.Sprintf("s/a%02d", i), []byte(fmt.Sprint(i))) })
	}
	waitFor(t, "the members compact their metadata logs", func() bool { return logFirst(w.st, meta) > 10 && logFirst(lagging.st, meta) > 10 })
	// A member whose store is lost.
	c.net.down(wiped.h.Self())
	wiped.st, wiped.join = memstore.New(), true
	c.start(wiped)
	// The group is quiet by now: its leader wakes it when the member
	// comes back (rejoin.go), with no write to carry it.
	converge(lagging, wiped)
	snapshotted(wiped, 0)
	waitFor(t, "the wiped member's handler hears of the keys", func() bool { return slices.Contains(wiped.rec.metaKeys(), "s/a29") })
	// A member down while the log moves past it.
	write(lagging, func(b *store.Batch) { b.PutMeta("mine", []byte("local")) })
	c.net.down(lagging.h.Self())
	_, heldAt := logBounds(lagging, meta)
	for i := range 40 {
		write(w, func(b *store.Batch) {
			b.PutMeta(fmt.Sprintf("s/k%02d", i), []byte(fmt.Sprint(i)))
			b.PutMeta("c/kept", []byte("second")) // loses to the first everywhere
			if i == 20 {
				b.DeleteMeta("s/doomed")
			}
		})
	}
	waitFor(t, "the live members compact the metadata log past the down member", func() bool {
		return logFirst(w.st, meta) > heldAt+1 && logFirst(wiped.st, meta) > heldAt+1
	})
	c.start(lagging)
	want := converge(lagging, wiped)
	if !strings.Contains(want, "s/k39=39") || !strings.Contains(want, "c/kept=first") || strings.Contains(want, "doomed") {
		t.Fatalf("the writer's metadata:\n%s", want)
	}
	snapshotted(lagging, heldAt)
	waitFor(t, "the lagging member's handler hears of the keys", func() bool {
		return slices.Contains(lagging.rec.metaKeys(), "s/doomed") && slices.Contains(lagging.rec.metaKeys(), "s/k00")
	})
	if got := metaOf(t, lagging.st, "mine"); got != "local" {
		t.Errorf("the lagging member's local key holds %q", got)
	}
	// Both go on from the log, and write themselves.
	write(lagging, func(b *store.Batch) { b.PutMeta("s/after", []byte("1")) })
	write(wiped, func(b *store.Batch) { b.PutMeta("s/after2", []byte("2")) })
	waitFor(t, "the writer has both writes", func() bool { return metaOf(t, w.st, "s/after2") == "2" && metaOf(t, w.st, "s/after") == "1" })
	want = converge(lagging, wiped)
	if !strings.Contains(want, "s/after=1") || !strings.Contains(want, "s/after2=2") {
		t.Fatalf("metadata after the snapshot:\n%s", want)
	}
}
