//go:build integration

package cluster

// Damage to one node's log. A member's Raft log lives in its store, so its
// newest unflushed entries are in the store's newest write-ahead log
// (pebble/NNNNNN.log). The node is killed (kill -9), that file damaged,
// and the node started again:
//
//   - a truncated tail reads as a write the crash cut short: the store cuts
//     it with a warning and the node starts with an older log, which its
//     peers bring up to date;
//   - bytes flipped in the middle, with intact records after them, make the
//     store refuse to start, naming the file and --repair; started with
//     --repair (dropping what follows the damage) or on a wiped data
//     directory (--init), the node rejoins and catches up from its peers.
//
// The other two members hold every confirmed message throughout, and the
// checker demands that the damaged member ends up with the same contents.

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/record"
)

// newestWAL returns the path of the newest write-ahead log in nd's store.
func newestWAL(t *testing.T, nd *node) string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(nd.data, "pebble", "*.log"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no write-ahead log in %s: %v", nd.data, err)
	}
	newest, best := "", -1
	for _, p := range paths {
		n, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(p), ".log"))
		if err == nil && n > best {
			newest, best = p, n
		}
	}
	return newest
}

// liveWAL reads the newest WAL of nd and returns its content and where
// its last readable record ends: past that lie a record the kill cut short
// or the stale bytes of a recycled file, which are not data, so damage is
// aimed before it.
func liveWAL(t *testing.T, nd *node) (path string, data []byte, end int64) {
	t.Helper()
	path = newestWAL(t, nd)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	num, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(path), ".log"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	r := newRecordReader(record.NewReader, bytes.NewReader(data), num)
	for {
		rec, err := r.Next()
		if err == nil {
			_, err = io.Copy(io.Discard, rec)
		}
		if err != nil {
			return path, data, end
		}
		end = r.Offset()
	}
}

// newRecordReader calls record.NewReader, whose log number type lives in
// a Pebble internal package: inference names it.
func newRecordReader[N ~uint64](newReader func(io.Reader, N) *record.Reader, r io.Reader, logNum uint64) *record.Reader {
	return newReader(r, N(logNum))
}

// truncateWAL cuts the newest WAL of nd in the middle of its records.
func truncateWAL(t *testing.T, nd *node) string {
	t.Helper()
	path, data, end := liveWAL(t, nd)
	if err := os.Truncate(path, end/2); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s cut from %d bytes (records up to %d) to %d", filepath.Base(path), len(data), end, end/2)
}

// minDamaged is how many bytes of records a WAL needs for its middle to
// be damaged with records of this log after the damage.
const minDamaged = 64 << 10

// flipWAL inverts 16 bytes in the middle of the newest WAL's records.
func flipWAL(t *testing.T, nd *node) string {
	t.Helper()
	path, data, end := liveWAL(t, nd)
	if end < minDamaged {
		t.Fatalf("%s holds records up to %d bytes only: too little to damage their middle", path, end)
	}
	mid := int(end / 2)
	for i := mid; i < mid+16; i++ {
		data[i] ^= 0xff
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s: 16 bytes inverted at offset %d (records up to %d of %d bytes)", filepath.Base(path), mid, end, len(data))
}

// logSince returns what nd's log holds after offset.
func logSince(t *testing.T, nd *node, offset int64) string {
	t.Helper()
	b, err := os.ReadFile(nd.log.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b[min(offset, int64(len(b))):])
}

func logSize(nd *node) int64 {
	fi, err := nd.log.Stat()
	if err != nil {
		return 0
	}
	return fi.Size()
}

// startRefused starts nd and expects it to exit, refusing its data: it
// returns what it logged.
func (c *cluster) startRefused(nd *node) string {
	c.t.Helper()
	off := logSize(nd)
	c.start(nd)
	exited := make(chan error, 1)
	go func() { exited <- nd.cmd.Wait() }()
	select {
	case err := <-exited:
		nd.cmd = nil
		nd.alive.Store(false)
		if err == nil {
			c.t.Fatalf("%s exited with status 0, want a refusal", nd.name)
		}
	case <-time.After(30 * time.Second):
		c.t.Fatalf("%s started on a damaged log instead of refusing it; it logged:\n%s", nd.name, logSince(c.t, nd, off))
	}
	return logSince(c.t, nd, off)
}

// damageFault kills a member (the queue's leader, so that the damaged
// node comes back as a follower of a new one; or, follower set, a follower,
// so that the leader that stays remembers it holding more than it does
// now), damages its newest WAL with damage, and brings it back with
// restart.
func damageFault(name string, follower bool, damage func(*testing.T, *node) string, restart func(*testing.T, *cluster, *workload, *node)) fault {
	return fault{name: name, hold: 3 * time.Second, majority: true,
		inject: func(t *testing.T, c *cluster, w *workload) func() {
			w.awaitConfirmed(t, 2000, 60*time.Second) // a log worth damaging
			nd := c.leader(w.queue)
			if follower {
				nd = c.follower(nd)
			}
			// Right after the store moved to a new WAL there is little in
			// it: publish on until its records are worth damaging.
			for i := 0; i < 10; i++ {
				if _, _, end := liveWAL(t, nd); end >= minDamaged {
					break
				}
				w.awaitConfirmed(t, 1000, 60*time.Second)
			}
			w.strike(nd)
			c.kill(nd)
			t.Logf("%s: %s", nd.name, damage(t, nd))
			return func() { restart(t, c, w, nd) }
		}}
}

// The store cuts a torn tail with a warning and starts.
func restartTorn(t *testing.T, c *cluster, w *workload, nd *node) {
	off := logSize(nd)
	c.start(nd)
	c.waitUp(nd)
	if log := logSince(t, nd, off); !strings.Contains(log, "torn record") {
		t.Errorf("%s started on a truncated write-ahead log without saying it cut the tail; it logged:\n%s", nd.name, tail(log, 2000))
	}
}

// A follower's torn log restarts as restartTorn does, and the leader,
// which remembers it holding entries it lost (they were cut from its
// log), hears so and hands its lead on, for a new leader to catch the
// member up from what it holds: the checker's counts show it did.
func restartTornFollower(t *testing.T, c *cluster, w *workload, nd *node) {
	offs := make(map[*node]int64)
	for _, o := range c.nodes {
		offs[o] = logSize(o)
	}
	restartTorn(t, c, w, nd)
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, o := range c.nodes {
			if strings.Contains(logSince(t, o, offs[o]), "a member lost its copy of a group") {
				// The lead moved just now: the checker's gap applies to
				// the deliveries around it.
				w.mu.Lock()
				w.struck = append(w.struck, struck{"", time.Now()})
				w.mu.Unlock()
				return
			}
		}
		if time.Now().After(deadline) {
			// Not every cut reaches below what the leader saw acknowledged
			// (a lead that moved meanwhile knows less): the counts the
			// checker compares still show whether the member caught up.
			t.Logf("no leader said that %s lost log entries it had acknowledged", nd.name)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The store refuses damage with intact records after it, naming the file
// and the way out.
func expectRefusal(t *testing.T, c *cluster, nd *node) {
	log := c.startRefused(nd)
	for _, want := range []string{"damaged at offset", "refusing to start", "--repair"} {
		if !strings.Contains(log, want) {
			t.Errorf("%s refused its damaged log without saying %q; it logged:\n%s", nd.name, want, tail(log, 2000))
		}
	}
}

func restartRepaired(t *testing.T, c *cluster, w *workload, nd *node) {
	expectRefusal(t, c, nd)
	c.start(nd, "--repair")
	c.waitUp(nd)
}

func restartWiped(t *testing.T, c *cluster, w *workload, nd *node) {
	expectRefusal(t, c, nd)
	if err := os.RemoveAll(nd.data); err != nil {
		t.Fatal(err)
	}
	c.start(nd, "--init")
	c.waitUp(nd)
}

var (
	truncatedLog         = damageFault("the leader killed, the tail of its log truncated", false, truncateWAL, restartTorn)
	truncatedFollowerLog = damageFault("a follower killed, the tail of its log truncated", true, truncateWAL, restartTornFollower)
	repairedLog          = damageFault("the leader killed, its log bit-flipped mid-file, restarted with --repair", false, flipWAL, restartRepaired)
	wipedLog             = damageFault("the leader killed, its log bit-flipped mid-file, its data wiped and rejoined", false, flipWAL, restartWiped)
)

func TestDamagedLogTruncated(t *testing.T) {
	runFaults(t, newCluster(t, 3), "torn", truncatedLog)
}

// The leader that stayed up remembers the follower holding entries it lost.
func TestDamagedFollowerLogTruncated(t *testing.T) {
	runFaults(t, newCluster(t, 3), "torn-follower", truncatedFollowerLog)
}

func TestDamagedLogRepaired(t *testing.T) {
	runFaults(t, newCluster(t, 3), "repaired", repairedLog)
}

func TestDamagedLogWiped(t *testing.T) {
	runFaults(t, newCluster(t, 3), "wiped", wipedLog)
}
