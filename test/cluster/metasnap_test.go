//go:build integration

package cluster

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// A node whose data directory is lost while the others go on comes back
// after the metadata log was compacted past it: it gets the metadata from
// a snapshot, sees the vhost, user, permissions, exchanges and bindings
// made meanwhile, and not the user deleted meanwhile.
func TestMetadataWipedNodeFromSnapshot(t *testing.T) {
	t.Setenv("SLUICE_CLUSTER_LOG_KEEP", "10")
	c := newCluster(t, 3)
	n1, n3 := c.nodes[0], c.nodes[2]
	n1.mustAPI(t, "PUT", "/api/users/old", map[string]any{"password": "pw", "tags": ""})
	eventually(t, "old on n3", func() error { return userOn(n3, "old", 200) })
	c.kill(n3)
	if err := os.RemoveAll(n3.data); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(n3.data, 0o755); err != nil {
		t.Fatal(err)
	}
	n1.mustAPI(t, "DELETE", "/api/users/old", nil)
	n1.mustAPI(t, "PUT", "/api/vhosts/shop", nil)
	n1.mustAPI(t, "PUT", "/api/users/alice", map[string]any{"password": "s3cret", "tags": ""})
	n1.mustAPI(t, "PUT", "/api/permissions/shop/alice", map[string]string{"configure": ".*", "write": ".*", "read": ".*"})
	n1.mustAPI(t, "PUT", "/api/exchanges/shop/orders", map[string]any{"type": "topic", "durable": true})
	n1.mustAPI(t, "PUT", "/api/queues/shop/audit", map[string]any{"durable": true})
	n1.mustAPI(t, "POST", "/api/bindings/shop/e/orders/q/audit", map[string]any{"routing_key": "eu.#"})
	// Enough entries for every member to compact past what n3 held.
	for i := range 30 {
		n1.mustAPI(t, "PUT", fmt.Sprintf("/api/exchanges/%%2F/filler%02d", i), map[string]any{"type": "fanout", "durable": true})
	}
	// Members look at compacting every 5 s (50 ticks).
	time.Sleep(6 * time.Second)
	c.start(n3)
	c.waitUp(n3)
	eventually(t, "alice logs in on n3", func() error {
		conn, err := dialAs(n3, "alice", "s3cret", "shop")
		if err == nil {
			conn.Close()
		}
		return err
	})
	eventually(t, "the binding on n3", func() error {
		status, out, err := n3.api("GET", "/api/exchanges/shop/orders/bindings/source", nil)
		if err != nil || status != 200 || !strings.Contains(string(out), `"audit"`) || !strings.Contains(string(out), `eu.#`) {
			return fmt.Errorf("%d %s %v", status, out, err)
		}
		return nil
	})
	if err := exchangeOn(n3, "filler29"); err != nil {
		t.Fatal(err)
	}
	if err := userOn(n3, "old", 404); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(n3.log.Name())
	metaSnap := false
	for _, line := range strings.Split(string(b), "\n") {
		// The metadata group is 1<<60.
		metaSnap = metaSnap || strings.Contains(line, "installed a snapshot") && strings.Contains(line, "1000000000000000")
	}
	if !metaSnap {
		t.Fatalf("the wiped node caught up without a metadata snapshot")
	}
}

func userOn(nd *node, name string, want int) error {
	status, out, err := nd.api("GET", "/api/users/"+name, nil)
	if err != nil || status != want {
		return fmt.Errorf("user %s on %s: %d %s %v, want %d", name, nd.name, status, out, err, want)
	}
	return nil
}
