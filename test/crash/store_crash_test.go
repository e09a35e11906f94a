//go:build integration

package crash

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// exited waits up to d for b to exit on its own and returns its exit code
// (-1 when it is still running).
func (b *broker) exited(d time.Duration) int {
	select {
	case <-b.done:
		return b.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		return -1
	}
}

// apiGet fetches an HTTP API path as guest.
func (b *broker) apiGet(t *testing.T, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+b.http+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("guest", "guest")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// confirmAll publishes n persistent messages with confirms and returns how
// many were acked and nacked; it fails if any confirm does not come within
// 10 seconds.
func confirmAll(t *testing.T, ch *amqp.Channel, confirms <-chan amqp.Confirmation, queue string, n int) (acks, nacks int) {
	t.Helper()
	for i := range n {
		err := ch.PublishWithContext(context.Background(), "", queue, false, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("msg-" + strconv.Itoa(i+1))})
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	timeout := time.After(10 * time.Second)
	for range n {
		select {
		case c := <-confirms:
			if c.Ack {
				acks++
			} else {
				nacks++
			}
		case <-timeout:
			t.Fatalf("%d of %d publishes got neither ack nor nack within 10s", n-acks-nacks, n)
		}
	}
	return acks, nacks
}

// Issue 10, finding 3: the data directory deleted under a running broker.
// The next publishes are nacked (none confirmed into deleted files), the
// broker stays up with its store alarm raised in the API and the metrics,
// says so once in its log, and a restart refuses to start empty there.
func TestDeletedDataDirectoryFences(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	b := start(t, data, "--init")
	conn, ch := dial(t, b.url())
	defer conn.Close()
	declare(t, ch, "q")
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 4096))
	if acks, _ := confirmAll(t, ch, confirms, "q", 100); acks != 100 {
		t.Fatalf("%d of 100 acked before the directory was deleted", acks)
	}
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	acks, nacks := confirmAll(t, ch, confirms, "q", 2000)
	if acks != 0 {
		t.Fatalf("%d publishes confirmed into the deleted data directory (%d nacked)", acks, nacks)
	}
	if code := b.exited(500 * time.Millisecond); code != -1 {
		t.Fatalf("the broker exited (%d) after the directory was deleted:\n%s", code, b.output())
	}
	if code, body := b.apiGet(t, "/api/health/checks/alarms"); code != 503 || !strings.Contains(body, `"resource":"store"`) {
		t.Fatalf("alarms check: %d %s; want 503 with the store alarm", code, body)
	}
	if _, body := b.apiGet(t, "/api/nodes"); !strings.Contains(body, `"store_alarm":true`) {
		t.Fatalf("/api/nodes does not show the store alarm: %s", body)
	}
	if _, body := b.apiGet(t, "/metrics"); !strings.Contains(body, "sluice_store_fenced 1") {
		t.Fatal("/metrics does not show sluice_store_fenced 1")
	}
	if n := strings.Count(b.output(), "message store failed"); n != 1 {
		t.Fatalf("the failure was logged %d times, want once:\n%s", n, b.output())
	}
	// Reads go on: the messages confirmed before are still delivered.
	if seen := drain(t, b.url(), "q"); len(seen) == 0 {
		t.Fatal("no message delivered after the fence")
	}
	b.kill()

	again := launch(t, data)
	if code := again.exited(20 * time.Second); code <= 0 || !strings.Contains(again.output(), "--init") {
		t.Fatalf("restart on the deleted directory: exit %d, want a refusal naming --init:\n%s", code, again.output())
	}
}

// crashWithMessages fills a queue with n confirmed messages and kills the
// broker, returning the path of the newest WAL it left.
func crashWithMessages(t *testing.T, data string, n int) string {
	t.Helper()
	b := start(t, data)
	fill(t, b.url(), "q", n)
	b.kill()
	logs, _ := filepath.Glob(filepath.Join(data, "pebble", "*.log"))
	if len(logs) == 0 {
		t.Fatal("no WAL after the crash")
	}
	return logs[len(logs)-1]
}

// Issue 10, finding 11: a torn final record is cut with a warning that says
// how many bytes; the broker starts with everything before it.
func TestTornWALTailIsCutWithAWarning(t *testing.T) {
	data := t.TempDir()
	const n = 300
	b := start(t, data)
	fill(t, b.url(), "q", n)
	// One more message in a record of its own: the one the crash tears.
	conn, ch := dial(t, b.url())
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	if acks, _ := confirmAll(t, ch, ch.NotifyPublish(make(chan amqp.Confirmation, 1)), "q", 1); acks != 1 {
		t.Fatal("the last message was not confirmed")
	}
	conn.Close()
	b.kill()
	logs, _ := filepath.Glob(filepath.Join(data, "pebble", "*.log"))
	cut(t, logs[len(logs)-1], func(b []byte) []byte { return b[:len(b)-7] })
	b = start(t, data)
	out := b.output()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "torn") || !strings.Contains(out, "dropped_bytes=") ||
		!strings.Contains(out, "dropped_records=1 ") {
		t.Fatalf("no warning about the torn tail:\n%s", out)
	}
	// Only the torn record goes: every message in the records before it
	// is there.
	seen := drain(t, b.url(), "q")
	if len(seen) < n || len(seen) > n+1 {
		t.Fatalf("%d of %d messages after cutting the last record", len(seen), n)
	}
	t.Logf("%d of %d messages kept", len(seen), n)
}

// Issue 10, finding 11: damage in the middle of the newest WAL, followed by
// intact records, refuses to start naming the file and the offset, until
// --repair accepts the loss and reports it.
func TestCorruptWALRefusesToStartUntilRepair(t *testing.T) {
	data := t.TempDir()
	const n = 2000
	wal := crashWithMessages(t, data, n)
	cut(t, wal, func(b []byte) []byte {
		for i := len(b) / 2; i < len(b)/2+16; i++ {
			b[i] ^= 0xff
		}
		return b
	})
	refused := launch(t, data)
	code := refused.exited(20 * time.Second)
	if code == -1 {
		refused.cmd.Process.Signal(syscall.SIGQUIT) // its goroutines, for the failure below
		time.Sleep(time.Second)
	}
	out := refused.output()
	if code <= 0 || !strings.Contains(out, filepath.Base(wal)) || !strings.Contains(out, "offset") || !strings.Contains(out, "--repair") {
		t.Fatalf("start on a WAL damaged mid-file: exit %d, want a refusal naming the file, the offset and --repair:\n%s", code, out)
	}
	b := start(t, data, "--repair")
	if out := b.output(); !strings.Contains(out, "dropped_records=") || !strings.Contains(out, "dropped_bytes=") {
		t.Fatalf("--repair does not report what it dropped:\n%s", out)
	}
	seen := drain(t, b.url(), "q")
	if len(seen) == 0 || len(seen) >= n {
		t.Fatalf("%d of %d messages after repair, want those before the damage", len(seen), n)
	}
	t.Logf("%d of %d messages kept after repair", len(seen), n)
}

func cut(t *testing.T, path string, f func([]byte) []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, f(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
