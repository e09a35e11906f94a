//go:build integration

package cluster

// The long randomised run (`make chaos`). Rounds follow each other until
// SLUICE_CHAOS_DURATION has passed; each round declares a new quorum queue,
// runs the workload through 1-4 faults drawn from the pool with their holds
// stretched at random (1-2x), heals them and applies the checker. The
// schedule follows from the seed alone: SLUICE_CHAOS_SEED replays it (the
// timing of a loaded machine does not replay). A summary goes to
// SLUICE_CHAOS_SUMMARY, written even when a round fails.

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestChaos(t *testing.T) {
	duration, err := time.ParseDuration(os.Getenv("SLUICE_CHAOS_DURATION"))
	if err != nil {
		t.Skip("set SLUICE_CHAOS_DURATION (e.g. 30m) for the randomised fault run; make chaos does")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SLUICE_CHAOS_SEED"); s != "" {
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("SLUICE_CHAOS_SEED=%q: %v", s, err)
		}
	}
	t.Logf("chaos seed %d (replay the schedule with SLUICE_CHAOS_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))

	pool := []fault{killLeader, killFollower, pauseLeader, powerLoss, truncatedLog, truncatedFollowerLog, repairedLog}
	var c *cluster
	if os.Geteuid() == 0 {
		c = newNetnsCluster(t, 3)
		pool = append(pool, isolateLeader, isolateLeaderWithClients)
	} else {
		t.Log("not root: no network partitions in the pool")
		c = newCluster(t, 3)
	}

	start := time.Now()
	var total result
	counts := make(map[string]int)
	var rounds []string
	t.Cleanup(func() {
		writeChaosSummary(t, seed, time.Since(start), duration, pool, counts, rounds, total)
		keepChaosLogs(t, c)
	})
	for round := 1; time.Since(start) < duration; round++ {
		faults := randomFaults(rng, pool, 1+rng.IntN(4))
		var names []string
		for i := range faults {
			faults[i].hold = time.Duration(float64(faults[i].hold) * (1 + rng.Float64()))
			counts[faults[i].name]++
			names = append(names, fmt.Sprintf("%s (%.1fs)", faults[i].name, faults[i].hold.Seconds()))
		}
		failedBefore := t.Failed()
		t.Logf("round %d: %s", round, strings.Join(names, "; "))
		r := runFaults(t, c, fmt.Sprintf("chaos-%d", round), faults...)
		total.add(r)
		verdict := "ok"
		switch {
		case t.Failed() && !failedBefore:
			verdict = "FAILED"
		case failedBefore:
			verdict = "after a failure (the test log says whether this round failed too)"
		}
		rounds = append(rounds, fmt.Sprintf("round %d %s: %s: %s", round, verdict, strings.Join(names, "; "), r))
		c.restoreAll()
	}
}

// restoreAll brings every node back whatever a round left behind: running,
// resumed, its partition healed.
func (c *cluster) restoreAll() {
	for _, nd := range c.nodes {
		if nd.netns != "" {
			c.heal(nd)
		}
		if nd.cmd == nil {
			c.start(nd)
			c.waitUp(nd)
		} else {
			nd.cmd.Process.Signal(syscall.SIGCONT)
		}
	}
}

func writeChaosSummary(t *testing.T, seed uint64, ran, duration time.Duration, pool []fault, counts map[string]int, rounds []string, total result) {
	var b strings.Builder
	verdict := "PASS"
	if t.Failed() {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "sluice chaos run: %s\nseed %d (SLUICE_CHAOS_SEED=%d replays the schedule)\n", verdict, seed, seed)
	fmt.Fprintf(&b, "ran %v of %v, %d rounds, %s\n", ran.Round(time.Second), duration, len(rounds), time.Now().UTC().Format(time.RFC3339))
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(&b, "load average at the end: %s\n", strings.Join(strings.Fields(string(la))[:3], " "))
	}
	fmt.Fprintf(&b, "totals: %s\nfaults injected:\n", total)
	for _, f := range pool {
		fmt.Fprintf(&b, "  %4d  %s\n", counts[f.name], f.name)
	}
	b.WriteString("rounds:\n")
	for _, r := range rounds {
		fmt.Fprintf(&b, "  %s\n", r)
	}
	t.Log("\n" + b.String())
	path := os.Getenv("SLUICE_CHAOS_SUMMARY")
	if path == "" {
		return
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Errorf("write the chaos summary: %v", err)
	}
}

// keepChaosLogs copies the nodes' logs (without the connection lines)
// beside the summary when the run failed, as the test's own directory goes.
func keepChaosLogs(t *testing.T, c *cluster) {
	path := os.Getenv("SLUICE_CHAOS_SUMMARY")
	if path == "" || !t.Failed() {
		return
	}
	for _, nd := range c.nodes {
		name := strings.TrimSuffix(path, ".txt") + "." + nd.name + ".log"
		if err := os.WriteFile(name, []byte(quietLog(nd)), 0o644); err != nil {
			t.Errorf("keep the log of %s: %v", nd.name, err)
		} else {
			t.Logf("log of %s kept in %s", nd.name, name)
		}
	}
}
