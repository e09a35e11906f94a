//go:build integration

package cluster

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluicemq/sluice/internal/sluicetest"
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
	f.args = []string{"--join"} // as docs/clustering.md says for a lost disk
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

// waitMembers polls a node until it reports the queue's members.
func waitMembers(t *testing.T, nd *node, queue, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		q, err := nd.queue(queue)
		if err == nil && strings.Join(q.Members, ",") == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s reports members %v (%v), want %s", nd.name, q.Members, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A quorum queue declared with x-quorum-initial-group-size 2 has two
// members, the declaring node first; `sluice queue grow` adds the third
// and `sluice queue shrink` removes another while a publisher publishes
// with confirms throughout; every confirmed message is consumed after.
func TestGrowAndShrinkUnderConfirms(t *testing.T) {
	c := newCluster(t, 3)
	args := amqp.Table{"x-queue-type": "quorum", "x-quorum-initial-group-size": int32(2)}
	if err := declare(t, c.nodes[0], "gs", args, false); err != nil {
		t.Fatal(err)
	}
	q, err := c.nodes[2].queue("gs")
	for i := 0; (err != nil || len(q.Members) != 2) && i < 100; i++ {
		time.Sleep(50 * time.Millisecond)
		q, err = c.nodes[2].queue("gs")
	}
	if err != nil || len(q.Members) != 2 || q.Members[0] != "n1" && q.Members[1] != "n1" || q.Leader != "n1" {
		t.Fatalf("declared with group size 2: %+v (%v), want two members led by n1", q, err)
	}
	var outside *node
	for _, nd := range c.nodes {
		if !slices.Contains(q.Members, nd.name) {
			outside = nd
		}
	}
	other := q.Members[0]
	if other == "n1" {
		other = q.Members[1]
	}

	var mu sync.Mutex
	confirmed := map[int]bool{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		publishConfirmedFunc(t, c, "gs", 0, 1500, func(id int) { mu.Lock(); confirmed[id] = true; mu.Unlock() })
	}()
	cli := func(args ...string) {
		t.Helper()
		out, err := exec.Command(binary, append(args, "--server", outside.httpAddr, "--user", "guest", "--password", "guest")...).CombinedOutput()
		if err != nil {
			t.Fatalf("sluice %v: %v\n%s", args, err, out)
		}
	}
	waitConfirmed := func(n int) {
		for {
			mu.Lock()
			got := len(confirmed)
			mu.Unlock()
			if got >= n {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitConfirmed(200)
	cli("queue", "grow", outside.name, "gs")
	all := []string{"n1", "n2", "n3"}
	waitMembers(t, c.nodes[0], "gs", strings.Join(all, ","))
	waitConfirmed(600)
	cli("queue", "shrink", other, "--all")
	waitMembers(t, c.nodes[0], "gs", strings.Join(slices.DeleteFunc(all, func(n string) bool { return n == other }), ","))
	<-done
	// The shrunk node leaves the quorum: the queue commits with it gone.
	c.kill(c.byName(other))
	publishConfirmedFunc(t, c, "gs", 1500, 1600, func(id int) { confirmed[id] = true })
	got := drain(t, c, "gs")
	lost := 0
	for id := range confirmed {
		if got[id] == 0 {
			lost++
		}
	}
	if lost > 0 || len(got) > 1600 {
		t.Fatalf("%d of %d confirmed lost, %d distinct consumed", lost, len(confirmed), len(got))
	}
	// A bad group size is refused as RabbitMQ refuses a bad argument.
	err = declare(t, c.nodes[0], "bad-size", amqp.Table{"x-queue-type": "quorum", "x-quorum-initial-group-size": int32(0)}, false)
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != 406 {
		t.Fatalf("group size 0: %v, want 406", err)
	}
}

// nodes lists the cluster's nodes as nd sees them: name -> running.
func nodesOf(nd *node) (map[string]bool, error) {
	req, _ := http.NewRequest("GET", "http://"+nd.httpAddr+"/api/nodes", nil)
	req.SetBasicAuth("guest", "guest")
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var ns []struct {
		Name    string `json:"name"`
		Running bool   `json:"running"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ns); err != nil {
		return nil, err
	}
	out := make(map[string]bool)
	for _, n := range ns {
		out[n.Name] = n.Running
	}
	return out, nil
}

func waitNodes(t *testing.T, nd *node, what string, ok func(map[string]bool) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ns, err := nodesOf(nd)
		if err == nil && ok(ns) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s: nodes %v (%v)", nd.name, what, ns, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A fourth node added with `sluice cluster add` and started with --join
// knows every quorum queue, takes a queue grown onto it, survives a
// restart of another node with the first --cluster list (the stored list
// wins), and `sluice cluster remove` takes it out of the queue and the
// list; no confirmed message is lost on the way.
func TestAddAndRemoveNode(t *testing.T) {
	c := newCluster(t, 3)
	if err := declare(t, c.nodes[0], "grown", quorum, false); err != nil {
		t.Fatal(err)
	}
	publishConfirmed(t, c, "grown", 0, 200)
	n4 := &node{name: "n4", amqpAddr: sluicetest.FreeAddr(t), httpAddr: sluicetest.FreeAddr(t), data: t.TempDir()}
	addr4 := sluicetest.FreeAddr(t)
	cli := func(server *node, args ...string) {
		t.Helper()
		out, err := exec.Command(binary, append(args, "--server", server.httpAddr)...).CombinedOutput()
		if err != nil {
			t.Fatalf("sluice %v: %v\n%s", args, err, out)
		}
	}
	cli(c.nodes[1], "cluster", "add", "n4="+addr4)
	n4.spec, n4.args = c.spec+",n4="+addr4, []string{"--join"}
	c.nodes = append(c.nodes, n4)
	c.start(n4)
	c.waitUp(n4)
	waitNodes(t, c.nodes[0], "n4 running", func(ns map[string]bool) bool { return ns["n4"] && len(ns) == 4 })
	// n4 is a learner: it knows the queue and its leader.
	deadline := time.Now().Add(20 * time.Second)
	for {
		q, err := n4.queue("grown")
		if err == nil && q.Type == "quorum" && q.Leader != "" && q.Messages == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n4 reports %+v (%v)", q, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cli(n4, "queue", "grow", "n4", "grown")
	waitMembers(t, c.nodes[0], "grown", "n1,n2,n3,n4")
	publishConfirmed(t, c, "grown", 200, 400)

	// A restart with the first --cluster keeps n4.
	n1 := c.nodes[0]
	c.kill(n1)
	c.start(n1)
	c.waitUp(n1)
	waitNodes(t, n1, "n4 kept after a restart with the old list", func(ns map[string]bool) bool { return len(ns) == 4 })

	cli(c.nodes[1], "cluster", "remove", "n4")
	waitMembers(t, n1, "grown", "n1,n2,n3")
	waitNodes(t, n1, "n4 removed", func(ns map[string]bool) bool { _, ok := ns["n4"]; return !ok && len(ns) == 3 })
	c.kill(n4)
	c.nodes = c.nodes[:3]
	publishConfirmed(t, c, "grown", 400, 450)
	got := drain(t, c, "grown")
	for id := range 450 {
		if got[id] == 0 {
			t.Fatalf("confirmed message %d lost (%d distinct consumed)", id, len(got))
		}
	}
}
