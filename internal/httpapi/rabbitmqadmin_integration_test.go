//go:build integration

package httpapi_test

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// admin runs rabbitmqadmin against the API at base and returns its output.
func admin(t *testing.T, script, base string, args ...string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	full := append([]string{script, "-H", u.Hostname(), "-P", u.Port(), "-u", "guest", "-p", "guest"}, args...)
	cmd := exec.CommandContext(ctx, "python3", full...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("rabbitmqadmin %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// TestRabbitmqadmin: RabbitMQ's own rabbitmqadmin 3.10.8 declares,
// lists, publishes, gets, sets a policy, exports and imports against
// Sluice unchanged.
func TestRabbitmqadmin(t *testing.T) {
	script := tool(t, "rabbitmqadmin") // unpacked by scripts/install-test-deps.sh
	e := start(t)
	run := func(args ...string) string { return admin(t, script, e.url, args...) }
	run("declare", "exchange", "name=orders", "type=topic")
	run("declare", "exchange", "name=all", "type=fanout")
	run("declare", "queue", "name=orders.created", `arguments={"x-max-length":100}`)
	run("declare", "queue", "name=everything", "durable=false", "auto_delete=false")
	run("declare", "binding", "source=orders", "destination=orders.created", "routing_key=order.*.created")
	run("declare", "binding", "source=orders", "destination=all", "destination_type=exchange", "routing_key=#")
	run("declare", "binding", "source=all", "destination=everything")
	run("declare", "policy", "name=ttl", `pattern=^orders\.`, `definition={"message-ttl":60000}`, "priority=1", "apply-to=queues")

	if out := run("list", "queues", "name", "messages"); !strings.Contains(out, "orders.created") || !strings.Contains(out, "everything") {
		t.Errorf("list queues:\n%s", out)
	}
	if out := run("-f", "tsv", "list", "exchanges", "name", "type"); !strings.Contains(out, "orders\ttopic") {
		t.Errorf("list exchanges:\n%s", out)
	}
	if out := run("list", "bindings", "source", "destination", "routing_key"); !strings.Contains(out, "order.*.created") {
		t.Errorf("list bindings:\n%s", out)
	}
	if out := run("list", "policies"); !strings.Contains(out, "ttl") {
		t.Errorf("list policies:\n%s", out)
	}
	if out := run("-f", "tsv", "-S", "name", "-R", "list", "queues", "name"); !strings.HasPrefix(strings.TrimSpace(strings.SplitN(out, "\n", 2)[1]), "orders.created") {
		t.Errorf("sorted list:\n%s", out)
	}
	if out := run("publish", "exchange=orders", "routing_key=order.eu.created", "payload=hello"); !strings.Contains(out, "Message published") {
		t.Errorf("publish: %s", out)
	}
	for _, q := range []string{"orders.created", "everything"} {
		if out := run("get", "queue="+q, "ackmode=ack_requeue_false"); !strings.Contains(out, "hello") {
			t.Errorf("get %s:\n%s", q, out)
		}
	}

	file := filepath.Join(t.TempDir(), "defs.json")
	run("export", file)
	b, err := os.ReadFile(file)
	if err != nil || !bytes.Contains(b, []byte(`"rabbit_version"`)) {
		t.Fatalf("export: %v %s", err, b)
	}
	other := start(t)
	admin(t, script, other.url, "import", file)
	if out := admin(t, script, other.url, "list", "queues", "name"); !strings.Contains(out, "orders.created") {
		t.Errorf("imported queues:\n%s", out)
	}
	if out := admin(t, script, other.url, "list", "bindings", "source", "destination"); !strings.Contains(out, "all") {
		t.Errorf("imported bindings:\n%s", out)
	}
	run("delete", "binding", "source=orders", "destination_type=exchange", "destination=all", "properties_key=%23") // RabbitMQ's properties key for "#"
	run("delete", "policy", "name=ttl")
	run("delete", "queue", "name=everything")
	if out := run("list", "queues", "name"); strings.Contains(out, "everything") {
		t.Errorf("deleted queue listed:\n%s", out)
	}
}
