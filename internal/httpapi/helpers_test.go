package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/httpapi"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

// testEnv is a broker with its AMQP server (sluicetest) and the HTTP API
// over it on 127.0.0.1:0.
type testEnv struct {
	sb  *sluicetest.Broker
	srv *httpapi.Server
	url string
	c   *api.Client // guest
}

func start(t *testing.T) *testEnv {
	t.Helper()
	return startWith(t, nil)
}

// startWith is start with the API's configuration changed by mod.
func startWith(t testing.TB, mod func(*httpapi.Config)) *testEnv {
	t.Helper()
	return startOn(t, sluicetest.Start(t), mod)
}

// startOn is startWith over a broker the test started.
func startOn(t testing.TB, sb *sluicetest.Broker, mod func(*httpapi.Config)) *testEnv {
	t.Helper()
	cfg := httpapi.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg.DataDir = t.TempDir()
	if mod != nil {
		mod(&cfg)
	}
	srv, err := httpapi.New(cfg, sb.Broker, sb.Server)
	if err != nil {
		t.Fatalf("httpapi.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("close http api: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	url := "http://" + ln.Addr().String()
	return &testEnv{sb: sb, srv: srv, url: url, c: api.NewClient(url, "guest", "guest")}
}

// as returns a client for another user.
func (e *testEnv) as(user, password string) *api.Client { return api.NewClient(e.url, user, password) }

// raw sends a request with a raw body and returns status and body.
func (e *testEnv) raw(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = bytes.NewBufferString(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("guest", "guest")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// amqpChannel dials the broker with amqp091-go.
func (e *testEnv) amqpChannel(t *testing.T) (*amqp.Connection, *amqp.Channel) {
	t.Helper()
	conn, err := amqp.Dial(e.sb.URL())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	return conn, ch
}

// death builds an x-death header as the broker writes it.
func death(queue, reason string, count int64, at time.Time) amqp.Table {
	return amqp.Table{"x-death": []any{amqp.Table{
		"count": count, "reason": reason, "queue": queue, "time": at,
		"exchange": "", "routing-keys": []any{queue},
	}}, "x-first-death-queue": queue, "x-first-death-reason": reason}
}

// publishConfirmed publishes through AMQP and waits for the confirms.
func publishConfirmed(t *testing.T, ch *amqp.Channel, exchange, key string, msgs ...amqp.Publishing) {
	t.Helper()
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("confirm: %v", err)
	}
	ctx := context.Background()
	for _, m := range msgs {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false, m)
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		if ok, err := dc.WaitContext(ctx); err != nil || !ok {
			t.Fatalf("confirm: %v %v", ok, err)
		}
	}
}

// wantStatus checks err is an API error with status (0: no error).
func wantStatus(t *testing.T, what string, err error, status int) {
	t.Helper()
	if got := api.StatusOf(err); got != status || (status == 0 && err != nil) {
		t.Fatalf("%s: status %d (%v), want %d", what, got, err, status)
	}
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

func declare(t *testing.T, c *api.Client, name string, args map[string]any) {
	t.Helper()
	if err := c.DeclareQueue(context.Background(), "/", name, api.QueueDeclare{Arguments: args}); err != nil {
		t.Fatalf("declare %s: %v", name, err)
	}
}

// waitTask polls a task until it is no longer running.
func waitTask(t *testing.T, c *api.Client, id string) api.Task {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		task, err := c.Task(context.Background(), id)
		if err != nil {
			t.Fatalf("task: %v", err)
		}
		if task.State != "running" {
			return task
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s still running: %+v", id, task)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
