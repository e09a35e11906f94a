//go:build integration

package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A follower whose data directory is lost (wiped while it was down) is
// started again on the empty directory: the queue's log has been
// compacted past what it held, so it catches up from a snapshot streamed
// by the leader, holds every message, and nothing confirmed is lost when
// the old leader then dies.
func TestWipedFollowerCatchesUpFromSnapshot(t *testing.T) {
	t.Setenv("SLUICE_CLUSTER_LOG_KEEP", "50")
	c := newCluster(t, 3)
	if err := declare(t, c.nodes[0], "wiped", quorum, false); err != nil {
		t.Fatal(err)
	}
	publishConfirmed(t, c, "wiped", 0, 200)
	l := c.leader("wiped")
	f := c.follower(l)
	c.kill(f)
	entries, err := os.ReadDir(f.data)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(f.data, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	publishConfirmed(t, c, "wiped", 200, 400)
	// Members compact every 5 s (50 ticks): give the leader a round to
	// drop the entries the wiped follower would need.
	time.Sleep(6 * time.Second)
	c.start(f)
	c.waitUp(f)
	deadline := time.Now().Add(20 * time.Second)
	for {
		q, err := f.queue("wiped")
		if err == nil && q.Messages == 400 && q.Type == "quorum" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("wiped follower: queue %+v (%v), want 400 messages", q, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if b, _ := os.ReadFile(f.log.Name()); !strings.Contains(string(b), "installed a snapshot") {
		t.Fatalf("the wiped follower caught up without a snapshot")
	}
	publishConfirmed(t, c, "wiped", 400, 450)
	c.kill(c.leader("wiped"))
	got := drain(t, c, "wiped")
	lost := 0
	for id := range 450 {
		if got[id] == 0 {
			lost++
		}
	}
	if lost > 0 || len(got) > 450 {
		t.Fatalf("%d of 450 confirmed lost, %d distinct consumed", lost, len(got))
	}
}
