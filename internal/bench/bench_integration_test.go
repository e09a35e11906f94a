//go:build integration

package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluicemq/sluice/internal/amqpserver"
	"github.com/sluicemq/sluice/internal/bench"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

// tiny returns a configuration for a small run against url: bounded to 2000
// messages and 30 s, so a slow CI machine still finishes by count.
func tiny(url, scenario, queue string) bench.Config {
	c := bench.DefaultConfig()
	c.URL, c.Scenario, c.Queue = url, scenario, queue
	c.Messages, c.Backlog = 2000, 2000
	c.Duration = 30 * time.Second
	c.MessageSize = 256
	return c
}

func TestBenchAgainstSluice(t *testing.T) {
	b := sluicetest.Start(t)
	tests := []struct {
		name  string
		cfg   func(bench.Config) bench.Config
		check func(t *testing.T, r bench.Result)
	}{
		{
			name: "publish",
			cfg:  func(c bench.Config) bench.Config { c.Scenario = bench.ScenarioPublish; return c },
			check: func(t *testing.T, r bench.Result) {
				p := onePhase(t, r, "publish")
				if p.Sent != 2000 || p.Confirmed != 2000 || p.Nacked != 0 || !p.Complete {
					t.Errorf("publish phase %+v, want 2000 sent and confirmed, complete", p)
				}
				if p.ConfirmLatency.Count != 2000 || p.ConfirmLatency.P99 <= 0 {
					t.Errorf("confirm latency %+v, want 2000 samples", p.ConfirmLatency)
				}
			},
		},
		{
			name: "publish and consume with multi-ack",
			cfg: func(c bench.Config) bench.Config {
				c.Publishers, c.Consumers, c.Prefetch, c.MultiAck = 2, 2, 100, 10
				return c
			},
			check: func(t *testing.T, r bench.Result) {
				p := onePhase(t, r, "publish")
				if p.Sent != 2000 || p.Confirmed != 2000 || p.Acked != 2000 || !p.Complete {
					t.Errorf("phase %+v, want 2000 sent, confirmed and acked", p)
				}
				if p.ConsumeLatency.Count != 2000 {
					t.Errorf("consume latency %+v, want 2000 samples", p.ConsumeLatency)
				}
			},
		},
		{
			name: "backlog",
			cfg: func(c bench.Config) bench.Config {
				c.Scenario, c.PID = bench.ScenarioBacklog, os.Getpid() // the test broker runs in this process
				return c
			},
			check: func(t *testing.T, r bench.Result) {
				if len(r.Phases) != 2 {
					t.Fatalf("backlog phases %+v, want fill and drain", r.Phases)
				}
				fill, drain := r.Phases[0], r.Phases[1]
				if fill.Confirmed != 2000 || fill.QueueDepth != 2000 || !fill.Complete {
					t.Errorf("fill %+v, want 2000 confirmed and queued", fill)
				}
				if drain.Acked != 2000 || drain.Consumed != 2000 || !drain.Complete {
					t.Errorf("drain %+v, want 2000 consumed and acked", drain)
				}
				if r.Memory == nil || r.Memory.AfterFill <= 0 || r.Memory.PeakSampled <= 0 {
					t.Errorf("memory %+v, want readings", r.Memory)
				}
			},
		},
		{
			name: "churn",
			cfg: func(c bench.Config) bench.Config {
				c.Scenario, c.Requeues, c.Messages = bench.ScenarioChurn, 2, 500
				return c
			},
			check: func(t *testing.T, r bench.Result) {
				p := onePhase(t, r, "churn")
				if p.Acked != 500 || p.Requeued != 1000 || p.Consumed != 1500 || !p.Complete {
					t.Errorf("churn %+v, want 500 acked after 1000 requeues", p)
				}
			},
		},
		{
			name: "requeue",
			cfg: func(c bench.Config) bench.Config {
				c.Scenario, c.Requeues, c.Backlog = bench.ScenarioRequeue, 1, 500
				return c
			},
			check: func(t *testing.T, r bench.Result) {
				if len(r.Phases) != 2 {
					t.Fatalf("requeue phases %+v, want fill and drain", r.Phases)
				}
				drain := r.Phases[1]
				if drain.Acked != 500 || drain.Requeued != 500 || drain.Consumed != 1000 || !drain.Complete {
					t.Errorf("drain %+v, want 500 acked after 500 requeues", drain)
				}
			},
		},
		{
			name: "fanout",
			cfg: func(c bench.Config) bench.Config {
				c.Fanout, c.Consumers, c.Messages = 3, 1, 300
				return c
			},
			check: func(t *testing.T, r bench.Result) {
				p := onePhase(t, r, "publish")
				if r.Consumers != 3 || p.Confirmed != 300 || p.Acked != 900 || !p.Complete {
					t.Errorf("fanout: %d consumers, phase %+v; want 3 consumers, 300 confirmed, 900 acked", r.Consumers, p)
				}
			},
		},
		{
			name: "paced",
			cfg: func(c bench.Config) bench.Config {
				c.Rate, c.Consumers, c.Messages = 1000, 1, 300
				return c
			},
			check: func(t *testing.T, r bench.Result) {
				p := onePhase(t, r, "publish")
				// 300 messages at 1000/s take at least 0.3 s.
				if p.Acked != 300 || p.Seconds < 0.29 {
					t.Errorf("paced phase %+v, want 300 acked over at least 0.3 s", p)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg(tiny(b.URL(), bench.ScenarioPublish, "bench-"+strings.ReplaceAll(tt.name, " ", "-")))
			var out bytes.Buffer
			r, err := bench.Run(t.Context(), cfg, &out)
			if err != nil {
				t.Fatalf("Run: %v\n%s", err, out.String())
			}
			if r.Interrupted {
				t.Fatal("run reported interrupted")
			}
			tt.check(t, r)
			if !strings.Contains(out.String(), "msg/s") {
				t.Errorf("summary lacks rates:\n%s", out.String())
			}
			if cfg.Fanout > 1 {
				for i := 1; i <= cfg.Fanout; i++ {
					assertQueueGone(t, b.URL(), fmt.Sprintf("%s.%d", cfg.Queue, i))
				}
				return
			}
			assertQueueGone(t, b.URL(), cfg.Queue)
		})
	}
}

func TestBatchingClientAgainstSluice(t *testing.T) {
	b := sluicetest.Start(t)
	tests := []struct {
		name  string
		cfg   func(bench.Config) bench.Config
		check func(t *testing.T, p bench.Phase)
	}{
		{
			name: "persistent with confirms",
			cfg:  func(c bench.Config) bench.Config { c.Messages, c.Confirms = 20000, 256; return c },
			check: func(t *testing.T, p bench.Phase) {
				if p.Sent != 20000 || p.Confirmed != p.Sent || p.Nacked != 0 || !p.Complete {
					t.Errorf("phase %+v, want 20000 sent and confirmed", p)
				}
				if p.ConfirmLatency.Count != 20000 || p.ConfirmLatency.P50 <= 0 {
					t.Errorf("confirm latency %+v, want 20000 samples", p.ConfirmLatency)
				}
			},
		},
		{
			name: "window of one, bodies over several frames",
			cfg: func(c bench.Config) bench.Config {
				c.Messages, c.Confirms, c.MessageSize = 50, 1, 300_000
				return c
			},
			check: func(t *testing.T, p bench.Phase) {
				if p.Sent != 50 || p.Confirmed != 50 || !p.Complete {
					t.Errorf("phase %+v, want 50 sent and confirmed", p)
				}
			},
		},
		{
			name: "transient without confirms, with a consumer",
			cfg: func(c bench.Config) bench.Config {
				c.Confirms, c.Persistent, c.Consumers = 0, false, 1
				return c
			},
			check: func(t *testing.T, p bench.Phase) {
				if p.Sent != 2000 || p.Acked != 2000 || p.Confirmed != 0 || !p.Complete {
					t.Errorf("phase %+v, want 2000 sent and acked", p)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg(tiny(b.URL(), bench.ScenarioPublish, "batching-"+strings.ReplaceAll(tt.name, " ", "-")))
			cfg.Client = bench.ClientBatching
			var out bytes.Buffer
			r, err := bench.Run(t.Context(), cfg, &out)
			if err != nil {
				t.Fatalf("Run: %v\n%s", err, out.String())
			}
			if r.Client != bench.ClientBatching || !strings.Contains(out.String(), "(batching client)") {
				t.Errorf("result names client %q, summary:\n%s", r.Client, out.String())
			}
			tt.check(t, onePhase(t, r, "publish"))
			assertQueueGone(t, b.URL(), cfg.Queue)
		})
	}
}

// TestBatchingClientSurfacesRefusals runs against a broker that refuses
// bodies over 100 bytes: with confirms it nacks them, without it closes the
// channel, which must end the run with the broker's reply text, not hang.
func TestBatchingClientSurfacesRefusals(t *testing.T) {
	b := sluicetest.Start(t, sluicetest.WithServerConfig(func(c *amqpserver.Config) { c.MaxMessageSize = 100 }))
	t.Run("nacked with confirms", func(t *testing.T) {
		cfg := tiny(b.URL(), bench.ScenarioPublish, "batching-nacked")
		cfg.Client, cfg.Messages = bench.ClientBatching, 500
		r, err := bench.Run(t.Context(), cfg, &bytes.Buffer{})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if p := onePhase(t, r, "publish"); p.Sent != 500 || p.Nacked != 500 || p.Confirmed != 0 {
			t.Errorf("phase %+v, want 500 sent and nacked", p)
		}
	})
	t.Run("channel closed without confirms", func(t *testing.T) {
		cfg := tiny(b.URL(), bench.ScenarioPublish, "batching-refused")
		cfg.Client, cfg.Confirms, cfg.Messages, cfg.Duration = bench.ClientBatching, 0, 0, 20*time.Second
		start := time.Now()
		_, err := bench.Run(t.Context(), cfg, &bytes.Buffer{})
		var closeErr *bench.ServerCloseError
		if !errors.As(err, &closeErr) || closeErr.Code != 406 || !strings.Contains(err.Error(), "larger than configured max size 100") {
			t.Fatalf("Run: %v, want the broker's 406 with its reply text", err)
		}
		if el := time.Since(start); el > 10*time.Second {
			t.Errorf("Run took %v to report the closed channel", el)
		}
	})
}

func TestBenchJSONAndKeep(t *testing.T) {
	b := sluicetest.Start(t)
	cfg := tiny(b.URL(), bench.ScenarioPublish, "bench-keep")
	cfg.Messages, cfg.Keep, cfg.JSON = 300, true, true
	var out bytes.Buffer
	if _, err := bench.Run(t.Context(), cfg, &out); err != nil {
		t.Fatalf("Run: %v", err)
	}
	var r bench.Result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("--json output is not a Result: %v\n%s", err, out.String())
	}
	if len(r.Phases) != 1 || r.Phases[0].Confirmed != 300 {
		t.Errorf("JSON result %+v, want one phase with 300 confirmed", r)
	}
	// Kept, with its 300 messages: a second run on it must refuse, and
	// must not delete it even without --keep.
	cfg.Keep = false
	if _, err := bench.Run(t.Context(), cfg, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "holds 300 messages") {
		t.Errorf("second run on a full queue: error = %v, want it refused", err)
	}
	if got := queueDepth(t, b.URL(), cfg.Queue); got != 300 {
		t.Errorf("refused run left the queue with %d messages, want the 300 kept", got)
	}
}

func queueDepth(t *testing.T, url, queue string) int {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("passive declare of %q: %v", queue, err)
	}
	return q.Messages
}

func TestBenchStopsOnCancel(t *testing.T) {
	b := sluicetest.Start(t)
	cfg := tiny(b.URL(), bench.ScenarioPublish, "bench-cancel")
	cfg.Messages, cfg.Consumers, cfg.Duration = 0, 1, time.Minute // time-bound only
	ctx, cancel := context.WithCancel(t.Context())
	out := &syncBuffer{}
	done := make(chan struct{})
	var r bench.Result
	var err error
	go func() {
		defer close(done)
		r, err = bench.Run(ctx, cfg, out)
	}()
	// Cancel once the first progress line shows messages flowing.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "sent") {
		if time.Now().After(deadline) {
			t.Fatalf("no progress within 30s:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond) // polling for an async event
	}
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of cancellation")
	}
	if err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	if !r.Interrupted || len(r.Phases) != 1 || r.Phases[0].Sent == 0 {
		t.Errorf("result %+v, want an interrupted run with messages sent", r)
	}
	if r.Phases[0].Seconds > 30 {
		t.Errorf("phase ran %.1fs, want it cut short by the cancellation", r.Phases[0].Seconds)
	}
	assertQueueGone(t, b.URL(), cfg.Queue)
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func onePhase(t *testing.T, r bench.Result, name string) bench.Phase {
	t.Helper()
	if len(r.Phases) != 1 || r.Phases[0].Name != name {
		t.Fatalf("phases %+v, want one %q", r.Phases, name)
	}
	return r.Phases[0]
}

// assertQueueGone checks that the bench deleted its queue.
func assertQueueGone(t *testing.T, url, queue string) {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	_, err = ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	var aerr *amqp.Error
	if err == nil {
		t.Errorf("queue %q still exists after the run", queue)
	} else if !errors.As(err, &aerr) || aerr.Code != amqp.NotFound {
		t.Errorf("passive declare of %q: %v, want 404 NOT_FOUND", queue, err)
	}
}
