//go:build integration

package cluster

// Network partitions. Run as root, each node runs in its own network
// namespace, its veth joined to a bridge in the test's namespace:
//
//	bridge slf<k>  10.77.<k>.1/24        (the test's clients connect from here)
//	netns slf<k>-n<i>, eth0 10.77.<k>.<10+i>/24, veth slf<k>v<i> on the bridge
//
// and a partition is iptables DROP rules inside one node's namespace. k is
// a free subnet claimed by creating its bridge, so runs in parallel do not
// collide; the bridge's alias names the owning test process, and a run
// removes what a dead run left behind. Nothing else on the machine is
// touched: the rules live in the nodes' namespaces, the addresses are only
// those of 10.77.<k>.0/24.

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	netnsPrefix = "slf"
	netnsAlias  = "sluice-test-cluster pid="
)

// newNetnsCluster starts n nodes, each in a network namespace of its own,
// or skips the test when it cannot (not root, no ip or iptables).
func newNetnsCluster(t *testing.T, n int) *cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network partitions need root (ip netns, veth, iptables in the nodes' namespaces); run the test as root")
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("network partitions need %s (Debian: iproute2, iptables; scripts/install-test-deps.sh installs them)", tool)
		}
	}
	sweepNetns(t)
	k, bridge := claimSubnet(t)
	t.Cleanup(func() { removeNetns(t, k) })
	defs := writeUserDefinitions(t, netnsUser)
	c := &cluster{t: t}
	var parts []string
	for i := range n {
		ns := fmt.Sprintf("%s%d-n%d", netnsPrefix, k, i+1)
		veth := fmt.Sprintf("%s%dv%d", netnsPrefix, k, i+1)
		addr := fmt.Sprintf("10.77.%d.%d", k, 10+i+1)
		mustRun(t, "ip", "netns", "add", ns)
		mustRun(t, "ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
		mustRun(t, "ip", "link", "set", veth, "master", bridge, "up")
		mustRun(t, "ip", "-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
		mustRun(t, "ip", "-n", ns, "link", "set", "eth0", "up")
		mustRun(t, "ip", "-n", ns, "link", "set", "lo", "up")
		nd := &node{name: fmt.Sprintf("n%d", i+1), amqpAddr: addr + ":5672", httpAddr: addr + ":15672", data: t.TempDir(), netns: ns,
			user: netnsUser, args: []string{"--load-definitions", defs}}
		c.nodes = append(c.nodes, nd)
		parts = append(parts, nd.name+"="+addr+":7001")
	}
	c.spec = strings.Join(parts, ",")
	c.boot()
	return c
}

// netnsUser is the administrator the test logs in as: the default user
// guest may log in from loopback only, and the test's clients are not on
// the nodes' loopback.
const netnsUser = "faults"

// writeUserDefinitions writes a definitions file that makes user, with
// its name as password, an administrator of vhost /.
func writeUserDefinitions(t *testing.T, user string) string {
	t.Helper()
	salt := make([]byte, 4)
	rand.Read(salt)
	sum := sha256.Sum256(append(slices.Clone(salt), user...))
	defs := map[string]any{
		"users": []map[string]any{{"name": user, "tags": []string{"administrator"},
			"password_hash":     base64.StdEncoding.EncodeToString(append(salt, sum[:]...)),
			"hashing_algorithm": "rabbit_password_hashing_sha256"}},
		"vhosts":      []map[string]any{{"name": "/"}},
		"permissions": []map[string]any{{"user": user, "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}},
	}
	b, err := json.Marshal(defs)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "definitions.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// claimSubnet creates the bridge of the first free subnet k and returns
// k and the bridge's name; at most 200 clusters exist at once.
func claimSubnet(t *testing.T) (int, string) {
	t.Helper()
	for k := 1; k <= 200; k++ {
		bridge := fmt.Sprintf("%s%d", netnsPrefix, k)
		if exec.Command("ip", "link", "add", bridge, "type", "bridge").Run() != nil {
			continue // taken by another run
		}
		mustRun(t, "ip", "link", "set", "dev", bridge, "alias", netnsAlias+strconv.Itoa(os.Getpid()))
		mustRun(t, "ip", "addr", "add", fmt.Sprintf("10.77.%d.1/24", k), "dev", bridge)
		mustRun(t, "ip", "link", "set", bridge, "up")
		return k, bridge
	}
	t.Fatal("no free test subnet 10.77.1-200.0/24 (bridges slf1-slf200 all exist)")
	return 0, ""
}

// removeNetns deletes subnet k's namespaces (their veths go with them) and
// its bridge. The nodes must be stopped first: t.Cleanup runs the kill
// registered by boot before this one.
func removeNetns(t *testing.T, k int) {
	// A namespace goes away asynchronously once unused, and its veths
	// with it; deleting the veths first makes the names free at once.
	links, _ := exec.Command("ip", "-o", "link", "show").Output()
	for _, line := range strings.Split(string(links), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if strings.HasPrefix(name, fmt.Sprintf("%s%dv", netnsPrefix, k)) {
			exec.Command("ip", "link", "del", name).Run()
		}
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(name, fmt.Sprintf("%s%d-n", netnsPrefix, k)) {
			if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v\n%s", name, err, out)
			}
		}
	}
	bridge := fmt.Sprintf("%s%d", netnsPrefix, k)
	if out, err := exec.Command("ip", "link", "del", bridge).CombinedOutput(); err != nil {
		t.Errorf("ip link del %s: %v\n%s", bridge, err, out)
	}
}

// sweepNetns removes the subnets of test processes that died without
// cleaning up (a timeout's panic skips t.Cleanup).
func sweepNetns(t *testing.T) {
	out, err := exec.Command("ip", "-j", "link", "show", "type", "bridge").Output()
	if err != nil {
		return
	}
	var links []struct {
		Name  string `json:"ifname"`
		Alias string `json:"ifalias"`
	}
	if json.Unmarshal(out, &links) != nil {
		return
	}
	for _, l := range links {
		pid, ok := strings.CutPrefix(l.Alias, netnsAlias)
		k, err := strconv.Atoi(strings.TrimPrefix(l.Name, netnsPrefix))
		if !ok || err != nil || !strings.HasPrefix(l.Name, netnsPrefix) {
			continue
		}
		if p, err := strconv.Atoi(pid); err == nil && syscall.Kill(p, 0) == nil {
			continue // its run is still going
		}
		t.Logf("removing subnet %d left by test process %s", k, pid)
		removeNetns(t, k)
	}
}

// partition cuts nd off with DROP rules in its namespace: from the other
// nodes only (peersOnly: the test's clients still reach it), or from
// everything on its network.
func (c *cluster) partition(nd *node, peersOnly bool) {
	c.t.Helper()
	nd.isolated.Store(true)
	ipt := func(args ...string) {
		mustRun(c.t, "ip", append([]string{"netns", "exec", nd.netns, "iptables"}, args...)...)
	}
	if !peersOnly {
		ipt("-A", "INPUT", "-i", "eth0", "-j", "DROP")
		ipt("-A", "OUTPUT", "-o", "eth0", "-j", "DROP")
		return
	}
	for _, p := range c.nodes {
		if p == nd {
			continue
		}
		host, _, _ := strings.Cut(p.amqpAddr, ":")
		ipt("-A", "INPUT", "-s", host, "-j", "DROP")
		ipt("-A", "OUTPUT", "-d", host, "-j", "DROP")
	}
}

// heal removes nd's DROP rules.
func (c *cluster) heal(nd *node) {
	c.t.Helper()
	for _, chain := range []string{"INPUT", "OUTPUT"} {
		mustRun(c.t, "ip", "netns", "exec", nd.netns, "iptables", "-F", chain)
	}
	nd.isolated.Store(false)
}

// isolateLeader cuts the leader off from everything: its clients lose it
// too, the other two elect a leader and go on.
var isolateLeader = fault{name: "the leader cut off from the network", hold: 8 * time.Second, majority: true,
	inject: func(t *testing.T, c *cluster, w *workload) func() {
		l := c.leader(w.queue)
		w.strike(l)
		c.partition(l, false)
		return func() { c.heal(l) }
	}}

// isolateLeaderWithClients cuts the leader off from the other nodes only:
// it stays up with its clients attached, and must confirm nothing sent to
// it from then on, while the majority side goes on confirming.
var isolateLeaderWithClients = fault{name: "the leader cut off from its peers, its clients still attached", hold: 8 * time.Second, majority: true,
	inject: func(t *testing.T, c *cluster, w *workload) func() {
		l := c.leader(w.queue)
		w.strike(l)
		c.partition(l, true)
		start := time.Now()
		return func() {
			end := time.Now()
			sent, confirmed := w.through(l.name, start, end)
			if confirmed > 0 {
				t.Errorf("the old leader %s, cut off from the majority, confirmed %d of the %d publishes sent to it during the partition", l.name, confirmed, sent)
			}
			if sent == 0 {
				t.Errorf("no publish was sent to the old leader %s during the partition: the test proved nothing", l.name)
			}
			c.heal(l)
		}
	}}

func TestPartitionIsolatesLeader(t *testing.T) {
	runFaults(t, newNetnsCluster(t, 3), "cut", isolateLeader)
}

func TestPartitionOldLeaderKeepsClients(t *testing.T) {
	runFaults(t, newNetnsCluster(t, 3), "minority", isolateLeaderWithClients)
}
