//go:build integration

// Package crash kills a real Sluice process with SIGKILL in the middle of
// work and checks, after a restart on the same data directory, that every
// message the broker confirmed is there exactly once (DESIGN §5).
package crash

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

var binary string

func TestMain(m *testing.M) { sluicetest.MainWithBinary(m, &binary) }

// broker is one run of the real binary on a data directory.
type broker struct {
	cmd  *exec.Cmd
	addr string
	http string // the HTTP API's host:port
	log  *os.File
	// done is closed once the process has exited and been reaped (one
	// goroutine waits for it, so kill and exited never race on Wait).
	done chan struct{}
}

// start runs the binary on dataDir, with extra flags, and waits until it
// accepts AMQP connections.
func start(t *testing.T, dataDir string, extra ...string) *broker {
	t.Helper()
	b := launch(t, dataDir, extra...)
	b.await(t)
	return b
}

// launch starts the binary without waiting for it.
func launch(t *testing.T, dataDir string, extra ...string) *broker {
	t.Helper()
	addr, httpAddr := sluicetest.FreeAddr(t), sluicetest.FreeAddr(t)
	logFile, err := os.CreateTemp(t.TempDir(), "sluice-*.log")
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--data", dataDir, "--amqp", addr, "--http", httpAddr}, extra...)
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &broker{cmd: cmd, addr: addr, http: httpAddr, log: logFile, done: make(chan struct{})}
	go func() { cmd.Wait(); close(b.done) }()
	t.Cleanup(func() { b.kill() })
	return b
}

// await waits until b accepts AMQP connections.
func (b *broker) await(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := amqp.Dial(b.url())
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("broker did not accept connections within 30s: %v\n%s", err, b.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *broker) url() string { return "amqp://guest:guest@" + b.addr + "/" }

func (b *broker) output() string {
	data, _ := os.ReadFile(b.log.Name())
	return string(data)
}

// kill sends SIGKILL and waits until the process is reaped; a second call
// does nothing.
func (b *broker) kill() {
	select {
	case <-b.done:
		return
	default:
	}
	b.cmd.Process.Signal(syscall.SIGKILL)
	<-b.done
}

func dial(t *testing.T, url string) (*amqp.Connection, *amqp.Channel) {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return conn, ch
}

// publisher publishes "msg-N" persistently with confirms until stopped, and
// records which N the broker confirmed.
type publisher struct {
	mu        sync.Mutex
	confirmed map[int]bool
	published int
}

func (p *publisher) confirmedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.confirmed)
}

func (p *publisher) run(ctx context.Context, ch *amqp.Channel, queue string, limit int) error {
	return p.publish(ctx, ch, "", queue, limit)
}

// publish is run to an exchange with a routing key.
func (p *publisher) publish(ctx context.Context, ch *amqp.Channel, exchange, key string, limit int) error {
	if err := ch.Confirm(false); err != nil {
		return err
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, limit+1))
	go func() {
		for c := range confirms {
			if c.Ack {
				p.mu.Lock()
				p.confirmed[int(c.DeliveryTag)] = true
				p.mu.Unlock()
			}
		}
	}()
	for i := 1; i <= limit; i++ {
		if ctx.Err() != nil {
			return nil
		}
		err := ch.PublishWithContext(ctx, exchange, key, false, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent,
			Body:         []byte("msg-" + strconv.Itoa(i)),
		})
		if err != nil {
			return err // the broker went away
		}
		p.mu.Lock()
		p.published = i
		p.mu.Unlock()
	}
	return nil
}

// drain takes every message of the queue and returns how often each N was seen.
func drain(t *testing.T, url, queue string) map[int]int {
	t.Helper()
	conn, ch := dial(t, url)
	defer conn.Close()
	seen := map[int]int{}
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatalf("get from %s: %v", queue, err)
		}
		if !ok {
			return seen
		}
		n, err := strconv.Atoi(strings.TrimPrefix(string(d.Body), "msg-"))
		if err != nil {
			t.Fatalf("unexpected body %q", d.Body)
		}
		seen[n]++
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func declare(t *testing.T, ch *amqp.Channel, queue string) {
	t.Helper()
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
}

// TestKillDuringPublish: §5 "A publisher confirm for a persistent message
// means it is fsynced" — everything confirmed before SIGKILL is there after
// the restart, once.
func TestKillDuringPublish(t *testing.T) {
	data := t.TempDir()
	b := start(t, data)
	conn, ch := dial(t, b.url())
	defer conn.Close()
	declare(t, ch, "crash-publish")

	p := &publisher{confirmed: map[int]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.run(ctx, ch, "crash-publish", 200000) }()
	waitFor(t, "3000 confirms", func() bool { return p.confirmedCount() >= 3000 })
	b.kill()
	cancel()
	<-done

	p.mu.Lock()
	confirmed := p.confirmed
	p.mu.Unlock()
	b = start(t, data)
	seen := drain(t, b.url(), "crash-publish")
	checkConfirmedOnce(t, confirmed, seen)
	t.Logf("confirmed before kill: %d; found after restart: %d", len(confirmed), len(seen))
}

func checkConfirmedOnce(t *testing.T, confirmed map[int]bool, seen map[int]int) {
	t.Helper()
	lost := 0
	for n := range confirmed {
		if seen[n] == 0 {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d confirmed messages lost after kill -9", lost)
	}
	for n, c := range seen {
		if c > 1 {
			t.Errorf("message %d found %d times", n, c)
		}
	}
}

// fill publishes n persistent messages with confirms and waits for them all.
func fill(t *testing.T, url, queue string, n int) {
	t.Helper()
	conn, ch := dial(t, url)
	defer conn.Close()
	declare(t, ch, queue)
	p := &publisher{confirmed: map[int]bool{}}
	if err := p.run(context.Background(), ch, queue, n); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "all confirms", func() bool { return p.confirmedCount() == n })
}

// TestKillDuringAcks: §5 "a message is removed only by ack" — a consumer
// acks in order while the broker is killed; every message not acked yet is
// there after the restart, none twice.
func TestKillDuringAcks(t *testing.T) {
	const total = 20000
	data := t.TempDir()
	b := start(t, data)
	fill(t, b.url(), "crash-ack", total)

	conn, ch := dial(t, b.url())
	defer conn.Close()
	if err := ch.Qos(500, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume("crash-ack", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	acked := map[int]bool{}
	go func() {
		for d := range deliveries {
			n, _ := strconv.Atoi(strings.TrimPrefix(string(d.Body), "msg-"))
			if d.Ack(false) != nil {
				return
			}
			mu.Lock()
			acked[n] = true
			mu.Unlock()
		}
	}()
	waitFor(t, "5000 acks", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 5000 })
	b.kill()

	mu.Lock()
	sentAcks := len(acked)
	notAcked := map[int]bool{}
	for n := 1; n <= total; n++ {
		if !acked[n] {
			notAcked[n] = true
		}
	}
	mu.Unlock()
	b = start(t, data)
	seen := drain(t, b.url(), "crash-ack")
	checkConfirmedOnce(t, notAcked, seen)
	if len(seen) > total {
		t.Errorf("found %d messages, more than the %d published", len(seen), total)
	}
	t.Logf("acks sent before kill: %d; messages found after restart: %d", sentAcks, len(seen))
}

// TestKillDuringPurge: a purge interrupted by SIGKILL leaves a queue the
// broker can open, holding no message twice and none that was not published.
func TestKillDuringPurge(t *testing.T) {
	const total = 20000
	data := t.TempDir()
	b := start(t, data)
	fill(t, b.url(), "crash-purge", total)

	conn, ch := dial(t, b.url())
	purged := make(chan error, 1)
	go func() {
		_, err := ch.QueuePurge("crash-purge", false)
		purged <- err
	}()
	time.Sleep(2 * time.Millisecond) // let the purge reach the broker, then kill it mid-way
	b.kill()
	purgeErr := <-purged
	conn.Close()

	b = start(t, data)
	seen := drain(t, b.url(), "crash-purge")
	for n, c := range seen {
		if n < 1 || n > total {
			t.Errorf("message %d was never published", n)
		}
		if c > 1 {
			t.Errorf("message %d found %d times", n, c)
		}
	}
	if purgeErr == nil && len(seen) != 0 {
		t.Errorf("purge-ok was received, yet %d messages are back after the restart", len(seen))
	}
	t.Logf("purge answered before kill: %v; messages after restart: %d", purgeErr == nil, len(seen))
}

// TestPurgeIsDurable: once the broker has answered purge-ok, the purged
// messages do not come back after SIGKILL.
func TestPurgeIsDurable(t *testing.T) {
	const total = 5000
	data := t.TempDir()
	b := start(t, data)
	fill(t, b.url(), "crash-purged", total)
	conn, ch := dial(t, b.url())
	n, err := ch.QueuePurge("crash-purged", false)
	if err != nil || n != total {
		t.Fatalf("purge = %d, %v; want %d", n, err, total)
	}
	b.kill()
	conn.Close()

	b = start(t, data)
	if seen := drain(t, b.url(), "crash-purged"); len(seen) != 0 {
		t.Errorf("%d purged messages came back after kill -9", len(seen))
	}
}
