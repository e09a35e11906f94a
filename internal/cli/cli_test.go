package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/httpapi"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

// startServer runs a broker and its HTTP API on 127.0.0.1:0 and returns the
// API's URL and the broker.
func startServer(t *testing.T) (string, *sluicetest.Broker) {
	t.Helper()
	return startServerWith(t, nil)
}

// startServerWith is startServer with the API's listener wrapped by wrap
// (nil: plain HTTP), for TLS.
func startServerWith(t *testing.T, wrap func(net.Listener) net.Listener) (string, *sluicetest.Broker) {
	t.Helper()
	sb := sluicetest.Start(t)
	cfg := httpapi.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := httpapi.New(cfg, sb.Broker, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + ln.Addr().String()
	if wrap != nil {
		ln, addr = wrap(ln), "https://"+ln.Addr().String()
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Close(ctx)
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return addr, sb
}

type result struct {
	code           int
	stdout, stderr string
}

func sluice(t *testing.T, server, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	full := append([]string{}, args...)
	if server != "" {
		full = append(full, "--server", server)
	}
	code := run(context.Background(), full, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

func TestCommands(t *testing.T) {
	server, sb := startServer(t)
	body := filepath.Join(t.TempDir(), "body.json")
	if err := os.WriteFile(body, []byte(`{"from":"file"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stdout string // substring
		stderr string // substring
	}{
		{"declare", "", []string{"queue", "declare", "orders", "--arg", "x-max-length=100"}, 0, "queue orders declared", ""},
		{"declare exchange", "", []string{"exchange", "declare", "events", "--type", "topic"}, 0, "declared", ""},
		{"bind", "", []string{"bind", "events", "orders", "--key", "order.*"}, 0, "bound", ""},
		{"bind missing", "", []string{"bind", "events", "nope"}, ExitNotFound, "", "nope"},
		{"publish body", "", []string{"publish", "--exchange", "events", "--routing-key", "order.new", "--body", "one"}, 0, "published 3 bytes", ""},
		{"publish stdin", "two", []string{"publish", "--routing-key", "orders", "--header", "n=5"}, 0, "published 3 bytes", ""},
		{"publish file", "", []string{"publish", "--routing-key", "orders", "--file", body}, 0, "published 15 bytes", ""},
		{"publish delay", "", []string{"publish", "--routing-key", "orders", "--body", "later", "--delay", "1ms"}, 0, "published", ""},
		{"publish unroutable", "", []string{"publish", "--routing-key", "nowhere", "--body", "x"}, 0, "", "not routed"},
		{"queue ls", "", []string{"queue", "ls"}, 0, "orders", ""},
		{"queue peek", "", []string{"queue", "peek", "orders", "--limit", "2"}, 0, "one", ""},
		{"exchange ls", "", []string{"exchange", "ls"}, 0, "events", ""},
		{"consume", "", []string{"consume", "orders"}, 0, "one", ""},
		{"consume json", "", []string{"consume", "orders", "--json"}, 0, `"payload": "two"`, ""},
		{"purge", "", []string{"queue", "purge", "orders"}, 0, "2 messages removed", ""},
		{"missing queue", "", []string{"queue", "purge", "nope"}, ExitNotFound, "", "no queue 'nope'"},
		{"bad flag", "", []string{"queue", "ls", "--nope"}, ExitUsage, "", "flag provided but not defined"},
		{"missing arg", "", []string{"queue", "declare"}, ExitUsage, "", "want one queue name"},
		{"unknown command", "", []string{"frobnicate"}, ExitUsage, "", "unknown command"},
		{"group without sub", "", []string{"dlq"}, ExitUsage, "", "dlq redrive"},
		{"help", "", []string{"dlq", "redrive", "--help"}, 0, "", "--rate"},
		{"wrong password", "", []string{"queue", "ls", "--password", "bad"}, ExitAccess, "", "hint"},
		{"inequivalent", "", []string{"queue", "declare", "orders", "--arg", "x-max-length=5"}, ExitConflict, "", "x-max-length"},
		{"user add", "", []string{"user", "add", "ops", "--new-password", "pw", "--tags", "management"}, 0, "saved", ""},
		{"user ls", "", []string{"user", "ls"}, 0, "management", ""},
		{"permissions set", "", []string{"permissions", "set", "ops", "--configure", "^ops"}, 0, "set", ""},
		{"permissions ls", "", []string{"permissions", "ls"}, 0, "^ops", ""},
		{"as ops, refused", "", []string{"queue", "declare", "x", "--user", "ops", "--password", "pw"}, ExitAccess, "", "configure"},
		{"permissions delete", "", []string{"permissions", "delete", "ops"}, 0, "deleted", ""},
		{"user delete", "", []string{"user", "delete", "ops"}, 0, "deleted", ""},
		{"cluster status", "", []string{"cluster", "status"}, 0, "RUNNING", ""},
		{"queue delete", "", []string{"queue", "delete", "orders"}, 0, "deleted", ""},
		{"exchange delete", "", []string{"exchange", "delete", "events"}, 0, "deleted", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "purge" {
				// The 1 ms "publish delay" is routed when it comes due,
				// which a loaded machine may not have reached yet.
				waitReady(t, sb, "orders", 2)
			}
			r := sluice(t, server, tc.stdin, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stdout, tc.stdout) || !strings.Contains(r.stderr, tc.stderr) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s\nwant stdout ~ %q, stderr ~ %q",
					r.code, tc.code, r.stdout, r.stderr, tc.stdout, tc.stderr)
			}
		})
	}
}

// waitReady waits up to 5 s until queue holds n ready messages.
func waitReady(t *testing.T, sb *sluicetest.Broker, queue string, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		q, err := sb.Broker.Queue("/", queue)
		if err == nil && q.Ready == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %s: %d ready after 5 s, want %d (%v)", queue, q.Ready, n, err)
		}
	}
}

func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := sluice(t, "http://"+addr, "", "queue", "ls")
	if r.code != ExitUnreachable || !strings.Contains(r.stderr, "is the broker running") {
		t.Fatalf("exit %d stderr %s", r.code, r.stderr)
	}
}

func TestEnvironment(t *testing.T) {
	server, _ := startServer(t)
	t.Setenv("SLUICE_SERVER", server)
	t.Setenv("SLUICE_USER", "guest")
	t.Setenv("SLUICE_PASSWORD", "wrong")
	if r := sluice(t, "", "", "queue", "ls"); r.code != ExitAccess {
		t.Fatalf("with a wrong SLUICE_PASSWORD: exit %d (%s)", r.code, r.stderr)
	}
	t.Setenv("SLUICE_PASSWORD", "guest")
	if r := sluice(t, "", "", "queue", "ls", "--json"); r.code != 0 || strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("exit %d stdout %q stderr %s", r.code, r.stdout, r.stderr)
	}
}

// TestDLQWorkflow: dead letters published with x-death are listed,
// shown, edited and redriven with the CLI, and arrive in their queue.
func TestDLQWorkflow(t *testing.T) {
	server, sb := startServer(t)
	for _, args := range [][]string{{"queue", "declare", "orders"}, {"queue", "declare", "orders.dlq"}} {
		if r := sluice(t, server, "", args...); r.code != 0 {
			t.Fatalf("%v: %s", args, r.stderr)
		}
	}
	conn, err := amqp.Dial(sb.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	for i, reason := range []string{"rejected", "expired", "rejected"} {
		h := amqp.Table{"x-death": []any{amqp.Table{"queue": "orders", "reason": reason, "count": int64(1),
			"exchange": "", "routing-keys": []any{"orders"}, "time": time.Now().Truncate(time.Second)}}}
		err := ch.PublishWithContext(context.Background(), "", "orders.dlq", false, false,
			amqp.Publishing{Headers: h, Body: []byte(`{"n":` + string(rune('0'+i)) + `}`)})
		if err != nil {
			t.Fatal(err)
		}
	}
	c := api.NewClient(server, "guest", "guest")
	deadline := time.Now().Add(5 * time.Second)
	for {
		q, _ := c.Queue(context.Background(), "/", "orders.dlq")
		if q.Messages == 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}

	if r := sluice(t, server, "", "dlq", "ls"); r.code != 0 || !strings.Contains(r.stdout, "orders.dlq") || strings.Contains(r.stdout, "orders ") {
		t.Fatalf("dlq ls: %d %s %s", r.code, r.stdout, r.stderr)
	}
	r := sluice(t, server, "", "dlq", "show", "orders.dlq", "--reason", "rejected", "--json")
	var ms []api.Message
	if err := json.Unmarshal([]byte(r.stdout), &ms); err != nil || len(ms) != 2 {
		t.Fatalf("dlq show: %v %s %s", err, r.stdout, r.stderr)
	}
	if r := sluice(t, server, "", "dlq", "show", "orders.dlq"); !strings.Contains(r.stdout, "expired") {
		t.Fatalf("dlq show table: %s", r.stdout)
	}
	if r := sluice(t, server, "", "dlq", "show", "orders.dlq", "--since", "nope"); r.code != ExitUsage || !strings.Contains(r.stderr, "since") {
		t.Fatalf("bad filter: %d %s", r.code, r.stderr)
	}
	id := ms[1].ID
	idS := strings.TrimSpace(string(must(json.Marshal(id))))
	if r := sluice(t, server, "", "dlq", "edit", "orders.dlq", idS, "--body", `{"n":2,"fixed":true}`, "--header", "fixed=true"); r.code != 0 {
		t.Fatalf("dlq edit: %d %s", r.code, r.stderr)
	}
	if r := sluice(t, server, "", "dlq", "edit", "orders.dlq", "99999", "--body", "x"); r.code != ExitNotFound {
		t.Fatalf("edit missing: %d %s", r.code, r.stderr)
	}
	if r := sluice(t, server, "", "dlq", "redrive", "orders.dlq", "--reason", "rejected", "--dry-run"); r.code != 0 || !strings.Contains(r.stdout, "would move 2") {
		t.Fatalf("dry run: %d %s %s", r.code, r.stdout, r.stderr)
	}
	r = sluice(t, server, "", "dlq", "redrive", "orders.dlq", "--reason", "rejected")
	if r.code != 0 || !strings.Contains(r.stdout, "moved 2 of 2") {
		t.Fatalf("redrive: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stderr, "2/2") || strings.Contains(r.stderr, "\r") {
		t.Errorf("a progress bar was drawn into stderr, which is no terminal: %q", r.stderr)
	}
	d, ok, err := ch.Get("orders", true)
	if err != nil || !ok {
		t.Fatalf("get: %v %v", ok, err)
	}
	d, ok, err = ch.Get("orders", true)
	if err != nil || !ok || string(d.Body) != `{"n":2,"fixed":true}` || d.Headers["fixed"] != true || d.Headers["x-redrive-count"] != int64(1) {
		t.Fatalf("second redriven message: %v %v %s %v", ok, err, d.Body, d.Headers)
	}
	if r := sluice(t, server, "", "dlq", "redrive", "orders.dlq", "--target", "nope"); r.code != ExitNotFound {
		t.Fatalf("redrive to missing target: %d %s", r.code, r.stderr)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
