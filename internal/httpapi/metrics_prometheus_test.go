//go:build integration

package httpapi_test

// Sluice's /metrics judged by Prometheus' own tools (Debian's prometheus
// package, unpacked into .cache/tools/bin by scripts/install-test-deps.sh):
// promtool lints the pages, and a real Prometheus server scrapes the
// broker and answers the RabbitMQ-Overview dashboard's kind of queries.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluicemq/sluice/internal/sluicetest"
)

// tool finds a binary install-test-deps.sh unpacked.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", ".cache", "tools", "bin", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not found (%v): run scripts/install-test-deps.sh", name, err)
	}
	return p
}

func TestPromtoolChecksMetrics(t *testing.T) {
	promtool := tool(t, "promtool")
	e := start(t)
	dashboardTraffic(t, e)
	for _, path := range []string{"/metrics", "/metrics/per-object"} {
		resp, err := http.Get(e.url + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(body)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool check metrics %s: %v\n%s", path, err, out)
		}
	}
}

// dashboardTraffic publishes, consumes and polls so that every counter the
// dashboard reads has moved.
func dashboardTraffic(t *testing.T, e *testEnv) {
	t.Helper()
	_, ch := e.amqpChannel(t)
	if _, err := ch.QueueDeclare("work", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	publishConfirmed(t, ch, "", "work", amqp.Publishing{Body: []byte("a")}, amqp.Publishing{Body: []byte("b")})
	if _, _, err := ch.Get("work", true); err != nil {
		t.Fatal(err)
	}
}

// TestGrafanaOverviewQueriesReturnData starts a real Prometheus that
// scrapes Sluice every 500 ms and runs, for every metric the
// RabbitMQ-Overview dashboard shows, a query of the dashboard's shape: the
// metric (or its rate) joined on rabbitmq_identity_info by instance and
// filtered by cluster. Each must return data.
func TestGrafanaOverviewQueriesReturnData(t *testing.T) {
	prom := tool(t, "prometheus")
	e := start(t)
	dashboardTraffic(t, e)

	target := strings.TrimPrefix(e.url, "http://")
	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 500ms\n  evaluation_interval: 500ms\nscrape_configs:\n"+
		"  - job_name: sluice\n    static_configs:\n      - targets: [%q]\n", target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := sluicetest.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, prom, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", logs.String())
		}
	})

	query := func(q string) (int, error) {
		resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var r struct {
			Status string `json:"status"`
			Error  string `json:"error"`
			Data   struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return 0, err
		}
		if r.Status != "success" {
			return 0, fmt.Errorf("%s", r.Error)
		}
		return len(r.Data.Result), nil
	}
	// rate() needs two samples inside its window.
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := query(`count_over_time(up{job="sluice"}[1m]) >= 3`)
		if err == nil && n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus did not scrape sluice three times in 30 s (last: %d, %v)", n, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	join := `* on(instance) group_left(rabbitmq_cluster, rabbitmq_node) rabbitmq_identity_info{rabbitmq_cluster="sluice", namespace=""}`
	for _, name := range dashboardMetrics {
		var q string
		switch {
		case name == "rabbitmq_identity_info":
			q = `rabbitmq_identity_info{rabbitmq_cluster="sluice", namespace=""}`
		case strings.HasSuffix(name, "_total") || name == "rabbitmq_channel_messages_unconfirmed":
			q = fmt.Sprintf("sum(rate(%s[60s]) %s) by(rabbitmq_node)", name, join)
		default:
			q = fmt.Sprintf("sum(%s %s) by(rabbitmq_node)", name, join)
		}
		n, err := query(q)
		if err != nil || n == 0 {
			t.Errorf("%s: %d series, %v", q, n, err)
		}
	}
}
