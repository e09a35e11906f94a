//go:build integration

// Package cluster runs three real `sluice serve` processes on loopback as
// a cluster and injects faults into a quorum queue's group: every message
// the cluster confirmed must be consumed at least once afterwards.
package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluicemq/sluice/internal/sluicetest"
)

var binary string

func TestMain(m *testing.M) { sluicetest.MainWithBinary(m, &binary) }

// node is one member: its addresses, data directory and current process.
type node struct {
	name, amqpAddr, httpAddr, data string
	cmd                            *exec.Cmd
	log                            *os.File
	// spec and args, when set, replace the cluster's --cluster and add
	// flags to every start (a node joining at run time: membership_test.go;
	// the user a namespaced node's clients log in as: netns_test.go).
	spec string
	args []string
	// netns is the network namespace the node runs in (netns_test.go),
	// "" for the test's own; isolated is set while a partition cuts it
	// off from the majority, so the harness looks for leaders elsewhere.
	netns    string
	isolated atomic.Bool
	// user logs in (guest, when empty, may log in from loopback only).
	user string
	// alive is set while the process runs (read by the workload's
	// goroutines, which must not touch cmd).
	alive atomic.Bool
}

type cluster struct {
	t     *testing.T
	spec  string
	nodes []*node
}

func newCluster(t *testing.T, n int) *cluster {
	c := &cluster{t: t}
	var parts []string
	for i := range n {
		nd := &node{name: fmt.Sprintf("n%d", i+1), amqpAddr: sluicetest.FreeAddr(t), httpAddr: sluicetest.FreeAddr(t), data: t.TempDir()}
		c.nodes = append(c.nodes, nd)
		parts = append(parts, nd.name+"="+sluicetest.FreeAddr(t))
	}
	c.spec = strings.Join(parts, ",")
	c.boot()
	return c
}

// boot starts c's nodes, waits until each accepts AMQP connections and
// registers their kill (and, when the test failed, their logs) with the
// test's cleanup.
func (c *cluster) boot() {
	t := c.t
	for _, nd := range c.nodes {
		c.start(nd)
	}
	for _, nd := range c.nodes {
		c.waitUp(nd)
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			c.kill(nd)
		}
		if t.Failed() {
			for _, nd := range c.nodes {
				t.Logf("log of %s (%s):\n%s", nd.name, nd.log.Name(), tail(quietLog(nd), 4000))
			}
		}
	})
}

// quietLog is nd's log without the lines of AMQP connections opening and
// closing, which the fault tests' reconnecting clients write by the
// thousand.
func quietLog(nd *node) string {
	b, _ := os.ReadFile(nd.log.Name())
	var keep []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, "amqp connection opened") && !strings.Contains(line, "amqp connection closed") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// start starts nd's process, with extra flags after the usual ones.
func (c *cluster) start(nd *node, extra ...string) {
	c.t.Helper()
	if nd.log == nil {
		f, err := os.CreateTemp(c.t.TempDir(), nd.name+"-*.log")
		if err != nil {
			c.t.Fatal(err)
		}
		nd.log = f
	}
	spec := c.spec
	if nd.spec != "" {
		spec = nd.spec
	}
	args := append([]string{binary, "serve", "--data", nd.data, "--amqp", nd.amqpAddr, "--http", nd.httpAddr,
		"--node", nd.name, "--cluster", spec}, append(slices.Clone(nd.args), extra...)...)
	if nd.netns != "" {
		// ip netns exec execs the binary: the process is sluice itself.
		args = append([]string{"ip", "netns", "exec", nd.netns}, args...)
	}
	nd.cmd = exec.Command(args[0], args[1:]...)
	nd.cmd.Stdout, nd.cmd.Stderr = nd.log, nd.log
	if err := nd.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	nd.alive.Store(true)
}

func (c *cluster) waitUp(nd *node) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := amqp.Dial(nd.url())
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(nd.log.Name())
			c.t.Fatalf("%s did not come up: %v; its log:\n%s", nd.name, err, tail(string(b), 4000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill is kill -9.
func (c *cluster) kill(nd *node) {
	if nd.cmd == nil || nd.cmd.Process == nil {
		return
	}
	nd.alive.Store(false)
	nd.cmd.Process.Signal(syscall.SIGKILL)
	nd.cmd.Wait()
	nd.cmd = nil
}

func (nd *node) url() string {
	user, password := nd.login()
	return "amqp://" + user + ":" + password + "@" + nd.amqpAddr + "/"
}

// login is the user and password the test logs in with (its password is
// its name).
func (nd *node) login() (string, string) {
	if nd.user == "" {
		return "guest", "guest"
	}
	return nd.user, nd.user
}

func (c *cluster) byName(name string) *node {
	for _, nd := range c.nodes {
		if nd.name == name {
			return nd
		}
	}
	return nil
}

type queueJSON struct {
	Type     string   `json:"type"`
	Leader   string   `json:"leader"`
	Members  []string `json:"members"`
	Online   []string `json:"online"`
	Messages int      `json:"messages"`
}

func (nd *node) queue(name string) (queueJSON, error) {
	var q queueJSON
	req, _ := http.NewRequest("GET", "http://"+nd.httpAddr+"/api/queues/%2F/"+name, nil)
	req.SetBasicAuth(nd.login())
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		return q, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return q, fmt.Errorf("GET queue: %s", resp.Status)
	}
	return q, json.NewDecoder(resp.Body).Decode(&q)
}

// follower returns a node of the cluster other than l.
func (c *cluster) follower(l *node) *node {
	for _, nd := range c.nodes {
		if nd != l {
			return nd
		}
	}
	c.t.Fatal("a cluster of one has no follower")
	return nil
}

// leader asks the live nodes until one names a live leader that itself
// agrees it leads.
func (c *cluster) leader(queue string) *node {
	c.t.Helper()
	if l := c.findLeader(queue, 20*time.Second); l != nil {
		return l
	}
	c.t.Fatal("no live leader")
	return nil
}

// findLeader is leader without failing the test (for goroutines), nil
// when there is none within timeout. Nodes cut off by a partition are
// not asked.
func (c *cluster) findLeader(queue string, timeout time.Duration) *node {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, nd := range c.nodes {
			if !nd.alive.Load() || nd.isolated.Load() {
				continue
			}
			q, err := nd.queue(queue)
			if err != nil || q.Leader == "" {
				continue
			}
			l := c.byName(q.Leader)
			if l == nil || !l.alive.Load() || l.isolated.Load() {
				continue
			}
			if lq, err := l.queue(queue); err == nil && lq.Leader == l.name {
				return l
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

func declare(t *testing.T, nd *node, name string, args amqp.Table, exclusive bool) error {
	t.Helper()
	conn, err := amqp.Dial(nd.url())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	_, err = ch.QueueDeclare(name, true, false, exclusive, false, args)
	return err
}

var quorum = amqp.Table{"x-queue-type": "quorum"}

func TestQuorumQueueDeclare(t *testing.T) {
	c := newCluster(t, 3)
	if err := declare(t, c.nodes[1], "qq", quorum, false); err != nil {
		t.Fatal(err)
	}
	for _, nd := range c.nodes {
		var q queueJSON
		deadline := time.Now().Add(10 * time.Second)
		for {
			var err error
			q, err = nd.queue("qq")
			if err == nil && q.Leader != "" && len(q.Online) == 3 || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if q.Type != "quorum" || q.Leader != "n2" || strings.Join(q.Members, ",") != "n1,n2,n3" || len(q.Online) != 3 {
			t.Errorf("%s reports %+v, want quorum led by n2 with members and online n1,n2,n3", nd.name, q)
		}
	}
	out, err := exec.Command(binary, "cluster", "status", "--server", c.nodes[2].httpAddr).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "qq            n2      n1,n2,n3  n1,n2,n3") {
		t.Errorf("sluice cluster status: %v\n%s", err, out)
	}
	// Two nodes declaring one queue at the same moment make one group
	// (one leader, as every node sees it).
	errs := make(chan error, 2)
	for _, nd := range []*node{c.nodes[0], c.nodes[2]} {
		go func() { errs <- declare(t, nd, "both", quorum, false) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent declaration: %v", err)
		}
	}
	l := c.leader("both")
	for _, nd := range c.nodes {
		deadline := time.Now().Add(5 * time.Second)
		q, err := nd.queue("both")
		for (err != nil || q.Leader != l.name) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			q, err = nd.queue("both")
		}
		if q.Leader != l.name {
			t.Errorf("%s sees leader %q for the concurrently declared queue, %s sees itself: %v", nd.name, q.Leader, l.name, err)
		}
	}
	// As RabbitMQ: exclusive, auto-delete and non-durable quorum queues
	// are refused with 406.
	for _, tc := range []struct {
		name                           string
		durable, autoDelete, exclusive bool
	}{{"exclusive", true, false, true}, {"auto-delete", true, true, false}, {"non-durable", false, false, false}} {
		conn, err := amqp.Dial(c.nodes[0].url())
		if err != nil {
			t.Fatal(err)
		}
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		_, err = ch.QueueDeclare("q-"+tc.name, tc.durable, tc.autoDelete, tc.exclusive, false, quorum)
		var ae *amqp.Error
		if !errors.As(err, &ae) || ae.Code != 406 || !strings.Contains(ae.Reason, tc.name) {
			t.Errorf("%s quorum queue: %v, want 406 naming %s", tc.name, err, tc.name)
		}
		conn.Close()
	}
}

// kill -9 of the leader in the middle of confirmed publishing through
// every node: the checker (checker_test.go) finds nothing confirmed lost.
func TestLeaderKillLosesNoConfirmedMessage(t *testing.T) {
	runFaults(t, newCluster(t, 3), "orders", killLeader)
}

// publishConfirmed publishes ids [from, to) through the queue's leader
// with confirms, retrying a nacked or cut-off publish, and returns once
// every one is confirmed.
func publishConfirmed(t *testing.T, c *cluster, queue string, from, to int) {
	t.Helper()
	publishConfirmedFunc(t, c, queue, from, to, func(int) {})
}

// publishConfirmedFunc is publishConfirmed calling confirmed for each id.
func publishConfirmedFunc(t *testing.T, c *cluster, queue string, from, to int, confirmed func(id int)) {
	deadline := time.Now().Add(60 * time.Second)
	for id := from; id < to; {
		if time.Now().After(deadline) {
			t.Fatalf("published only up to %d of [%d,%d) in time", id, from, to)
		}
		l := c.leader(queue)
		conn, err := amqp.Dial(l.url())
		if err != nil {
			continue
		}
		ch, err := conn.Channel()
		if err == nil {
			err = ch.Confirm(false)
		}
		for err == nil && id < to {
			var dc *amqp.DeferredConfirmation
			dc, err = ch.PublishWithDeferredConfirm("", queue, false, false,
				amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(strconv.Itoa(id))})
			if err == nil && dc.Wait() {
				confirmed(id)
				id++
			} else if err == nil {
				err = errors.New("nacked")
			}
		}
		conn.Close()
	}
}

// drain consumes and acks everything the queue's leader holds, until it
// is idle, and counts each id.
func drain(t *testing.T, c *cluster, queue string) map[int]int {
	t.Helper()
	msgs, closeConn := consumeOnLeader(t, c, queue)
	defer closeConn()
	got := make(map[int]int)
	idle := time.NewTimer(3 * time.Second)
	for {
		select {
		case m := <-msgs:
			id, err := strconv.Atoi(string(m.Body))
			if err != nil {
				t.Fatalf("consumed %q, which was never published", m.Body)
			}
			got[id]++
			m.Ack(false)
			idle.Reset(3 * time.Second)
		case <-idle.C:
			return got
		}
	}
}

// consumeOnLeader consumes from the queue's leader, retrying while the
// node named leader does not serve the queue yet (basic.consume is
// refused there until it has applied its predecessor's log).
func consumeOnLeader(t *testing.T, c *cluster, queue string) (<-chan amqp.Delivery, func()) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l := c.leader(queue)
		conn, err := amqp.Dial(l.url())
		if err != nil {
			t.Fatal(err)
		}
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		ch.Qos(500, 0, false)
		msgs, err := ch.Consume(queue, "", false, false, false, false, nil)
		if err == nil {
			return msgs, func() { conn.Close() }
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatalf("consume on leader %s: %v", l.name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A follower killed and restarted catches up; all three killed at once
// (power loss) and restarted keep every confirmed message.
func TestFollowerKillAndPowerLoss(t *testing.T) {
	runFaults(t, newCluster(t, 3), "pl", killFollower, powerLoss)
}

// The leader paused (SIGSTOP) past the election timeout, then resumed:
// the others elect a new leader, the old one steps down when it wakes, and
// no confirmed message is lost.
func TestLeaderPause(t *testing.T) {
	runFaults(t, newCluster(t, 3), "paused", pauseLeader)
}

// A publish to a quorum queue through a node that does not lead it goes
// to the leader over the cluster transport; its confirm waits for the
// leader's commit.
func TestPublishThroughFollower(t *testing.T) {
	c := newCluster(t, 3)
	if err := declare(t, c.nodes[0], "fwd", quorum, false); err != nil {
		t.Fatal(err)
	}
	l := c.leader("fwd")
	f := c.follower(l)
	conn, err := amqp.Dial(f.url())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	ch.Confirm(false)
	const n = 500
	var dcs []*amqp.DeferredConfirmation
	for id := range n {
		dc, err := ch.PublishWithDeferredConfirm("", "fwd", false, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(strconv.Itoa(id))})
		if err != nil {
			t.Fatal(err)
		}
		dcs = append(dcs, dc)
	}
	for id, dc := range dcs {
		if !dc.Wait() {
			t.Fatalf("publish %d through follower %s nacked", id, f.name)
		}
	}
	// Every node reports the replicated count, followers included.
	for _, nd := range c.nodes {
		deadline := time.Now().Add(5 * time.Second)
		q, err := nd.queue("fwd")
		for (err != nil || q.Messages != n) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			q, err = nd.queue("fwd")
		}
		if q.Messages != n {
			t.Errorf("%s reports %d messages (%v), want %d", nd.name, q.Messages, err, n)
		}
	}
	got := drain(t, c, "fwd")
	for id := range n {
		if got[id] != 1 {
			t.Fatalf("message %d consumed %d times, want once", id, got[id])
		}
	}
}

// TestFailoverTime measures, over SLUICE_FAILOVER_TRIALS trials (skipped
// when unset), the time from kill -9 of a quorum queue's leader to the
// first confirmed publish through a surviving node, and reports the
// median. `make bench-failover` runs it.
func TestFailoverTime(t *testing.T) {
	trials, _ := strconv.Atoi(os.Getenv("SLUICE_FAILOVER_TRIALS"))
	if trials <= 0 {
		t.Skip("set SLUICE_FAILOVER_TRIALS to measure failover")
	}
	c := newCluster(t, 3)
	var times []time.Duration
	for i := range trials {
		name := fmt.Sprintf("failover-%d", i)
		if err := declare(t, c.nodes[i%3], name, quorum, false); err != nil {
			t.Fatal(err)
		}
		publishConfirmed(t, c, name, 0, 10)
		l := c.leader(name)
		s := c.nodes[(i+1)%3]
		if s == l {
			s = c.nodes[(i+2)%3]
		}
		conn, err := amqp.Dial(s.url())
		if err != nil {
			t.Fatal(err)
		}
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		ch.Confirm(false)
		start := time.Now()
		c.kill(l)
		for {
			dc, err := ch.PublishWithDeferredConfirm("", name, false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("x")})
			if err != nil {
				t.Fatal(err)
			}
			if dc.Wait() {
				break
			}
			if time.Since(start) > 20*time.Second {
				t.Fatal("no confirmed publish within 20 s of the leader's death")
			}
			time.Sleep(10 * time.Millisecond)
		}
		d := time.Since(start)
		times = append(times, d)
		t.Logf("trial %d: leader %s killed, first confirm through %s after %v", i, l.name, s.name, d)
		conn.Close()
		c.start(l)
		c.waitUp(l)
	}
	slices.Sort(times)
	t.Logf("failover over %d trials: median %v, min %v, max %v", trials, times[len(times)/2], times[0], times[len(times)-1])
}

// A consumer on the leader keeps its subscription when the lead moves
// (the leader paused past the election timeout): it moves to the new
// leader, and what is published afterwards reaches it. (Until consumers
// were forwarded, a follower refused them with 405 and the old leader
// cancelled its consumers.)
func TestConsumerFollowsTheLead(t *testing.T) {
	c := newCluster(t, 3)
	if err := declare(t, c.nodes[0], "led", quorum, false); err != nil {
		t.Fatal(err)
	}
	l := c.leader("led")
	publishConfirmed(t, c, "led", 0, 1)
	lconn, err := amqp.Dial(l.url())
	if err != nil {
		t.Fatal(err)
	}
	defer lconn.Close()
	lch, err := lconn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	cancels := lch.NotifyCancel(make(chan string, 1))
	msgs, err := lch.Consume("led", "old-leader", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-msgs:
		m.Ack(false)
	case <-time.After(5 * time.Second):
		t.Fatal("the leader delivered nothing")
	}
	l.cmd.Process.Signal(syscall.SIGSTOP)
	time.Sleep(3 * time.Second)
	l.cmd.Process.Signal(syscall.SIGCONT)
	nl := c.leader("led")
	publishConfirmed(t, c, "led", 1, 2)
	for {
		select {
		case m := <-msgs:
			m.Ack(false)
			if string(m.Body) == "1" {
				return
			}
			// Message 0's ack may not have committed before the pause:
			// it comes again, flagged.
			if string(m.Body) != "0" || !m.Redelivered {
				t.Fatalf("got %q (redelivered %v), want message 1", m.Body, m.Redelivered)
			}
		case tag := <-cancels:
			t.Fatalf("consumer %s cancelled when the lead moved from %s to %s", tag, l.name, nl.name)
		case <-time.After(15 * time.Second):
			t.Fatalf("the consumer got nothing after the lead moved from %s to %s", l.name, nl.name)
		}
	}
}

// queue.delete of a quorum queue deletes it on every member, from any
// node (a follower forwards it to the leader, which checks if-empty); the
// name can be declared again, empty.
func TestQuorumQueueDelete(t *testing.T) {
	c := newCluster(t, 3)
	if err := declare(t, c.nodes[0], "del", quorum, false); err != nil {
		t.Fatal(err)
	}
	l := c.leader("del")
	f := c.follower(l)
	publishConfirmed(t, c, "del", 0, 3)
	conn, err := amqp.Dial(f.url())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	_, err = ch.QueueDelete("del", false, true, false)
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != 406 || !strings.Contains(ae.Reason, "not empty") {
		t.Fatalf("if-empty delete of a queue with 3 messages through follower %s: %v, want 406 not empty", f.name, err)
	}
	if ch, err = conn.Channel(); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDelete("del", false, false, false); err != nil {
		t.Fatalf("delete through follower %s: %v", f.name, err)
	}
	for _, nd := range c.nodes {
		deadline := time.Now().Add(5 * time.Second)
		_, err := nd.queue("del")
		for err == nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			_, err = nd.queue("del")
		}
		if err == nil || !strings.Contains(err.Error(), "404") {
			t.Errorf("%s after the deletion: %v, want 404", nd.name, err)
		}
	}
	// Declared again (on a follower of the old group), it starts empty.
	if err := declare(t, f, "del", quorum, false); err != nil {
		t.Fatal(err)
	}
	publishConfirmed(t, c, "del", 7, 8)
	got := drain(t, c, "del")
	if len(got) != 1 || got[7] != 1 {
		t.Fatalf("the queue declared again holds %v, want only message 7", got)
	}
}
