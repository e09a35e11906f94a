//go:build integration

package dlq_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/broker"
	"github.com/sluicemq/sluice/internal/dlq"
	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/store/pebblestore"
)

const (
	crashDirEnv   = "SLUICE_REDRIVE_CRASH_DIR"
	crashPhaseEnv = "SLUICE_REDRIVE_CRASH_PHASE"
	crashMessages = 20000
)

// TestRedriveKill9 kills -9 a process in the middle of a large redrive on
// the Pebble store, then checks every message is in exactly one of the two
// queues: the moved ones in orders with x-redrive-count, the others in the
// dead letter queue, none lost, none twice.
func TestRedriveKill9(t *testing.T) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashChild(t, dir, os.Getenv(crashPhaseEnv))
		return
	}
	dir := t.TempDir()
	child := func(phase string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRedriveKill9$", "-test.v")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashPhaseEnv+"="+phase)
		cmd.Stderr = os.Stderr
		return cmd
	}
	if out, err := child("fill").Output(); err != nil {
		t.Fatalf("fill: %v\n%s", err, out)
	}
	cmd := child("redrive")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill once the child reports a third of the messages moved.
	sc := bufio.NewScanner(stdout)
	moved := 0
	for sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "moved "); ok {
			moved, _ = strconv.Atoi(n)
			if moved >= crashMessages/3 {
				break
			}
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, stdout)
	_ = cmd.Wait()
	if moved < crashMessages/3 {
		t.Fatalf("the child stopped after %d moves", moved)
	}

	st, err := pebblestore.Open(dir, pebblestore.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b := openBroker(t, st)
	defer b.Close(context.Background())
	seen := make(map[string]string, crashMessages)
	for _, q := range []string{"dlq", "orders"} {
		var after uint64
		for {
			p, err := b.Browse("/", q, after, 5000, broker.Select{})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range p.Messages {
				body := string(m.Message.Body)
				if prev, dup := seen[body]; dup {
					t.Fatalf("message %s is in %s and %s", body, prev, q)
				}
				seen[body] = q
				n, _ := message.IntValue(m.Message.Properties.Headers[dlq.RedriveCountHeader])
				if (q == "orders") != (n == 1) {
					t.Fatalf("message %s in %s has x-redrive-count %v", body, q, n)
				}
			}
			if !p.More {
				break
			}
			after = p.Next
		}
	}
	if len(seen) != crashMessages {
		t.Fatalf("%d messages survived, want %d", len(seen), crashMessages)
	}
	inOrders := 0
	for _, q := range seen {
		if q == "orders" {
			inOrders++
		}
	}
	t.Logf("killed after %d reported moves; %d in orders, %d in dlq", moved, inOrders, crashMessages-inOrders)
	if inOrders < moved {
		t.Fatalf("%d messages in orders, but %d moves were reported done", inOrders, moved)
	}
}

// crashChild is the process that gets killed: phase fill stores the dead
// letters and exits cleanly; phase redrive moves them until killed.
func crashChild(t *testing.T, dir, phase string) {
	st, err := pebblestore.Open(dir, pebblestore.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	b := openBroker(t, st)
	switch phase {
	case "fill":
		fill(t, b, crashMessages)
		if err := b.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	case "redrive":
		w := openWorkflow(t, b)
		ids, err := w.MatchingIDs("/", "dlq", dlq.Filter{})
		if err != nil || len(ids) != crashMessages {
			t.Fatalf("ids: %d %v", len(ids), err)
		}
		moved := 0
		for i := 0; i < len(ids); i += 100 {
			res, err := w.RedriveNow(operator{}, "/", "dlq", ids[i:min(i+100, len(ids))], dlq.Target{}, false)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				if r.Err == nil {
					moved++
				}
			}
			fmt.Printf("moved %d\n", moved)
		}
		// Killed before this point, normally; stay until killed.
		time.Sleep(time.Minute)
	}
}
