package dlq_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/broker"
	"github.com/sluicemq/sluice/internal/dlq"
	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/store"
	"github.com/sluicemq/sluice/internal/store/memstore"
)

// operator may write everywhere.
type operator struct{}

func (operator) Name() string                            { return "guest" }
func (operator) CheckWrite(string, string, string) error { return nil }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openBroker opens a broker on st (nil: a new memstore).
func openBroker(t testing.TB, st store.Store) *broker.Broker {
	t.Helper()
	if st == nil {
		st = memstore.New()
	}
	cfg := broker.DefaultConfig()
	cfg.Logger = quiet()
	b, err := broker.Open(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openWorkflow(t testing.TB, b *broker.Broker) *dlq.Workflow {
	t.Helper()
	return openWorkflowChunk(t, b, 10)
}

// openWorkflowChunk is openWorkflow moving chunk messages per step.
func openWorkflowChunk(t testing.TB, b *broker.Broker, chunk int) *dlq.Workflow {
	t.Helper()
	cfg := dlq.DefaultConfig()
	cfg.Logger, cfg.RedriveChunk = quiet(), chunk
	cfg.User = func(string) (dlq.User, error) { return operator{}, nil }
	w, err := dlq.New(cfg, b)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// fill declares orders and dlq (durable) and puts n dead letters of
// orders into dlq.
func fill(t testing.TB, b *broker.Broker, n int) {
	t.Helper()
	conn, ch, err := b.AdminSession("/", "guest")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{"orders", "dlq"} {
		if _, err := ch.DeclareQueue(broker.QueueDecl{Name: q, Durable: true}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i := range n {
		m := &message.Message{RoutingKey: "dlq", Body: []byte(fmt.Sprint(i)), Properties: message.Properties{
			Flags: message.FlagDeliveryMode | message.FlagHeaders, DeliveryMode: 2,
			Headers: message.Table{"x-death": []any{message.Table{"count": int64(1), "reason": "rejected",
				"queue": "orders", "exchange": "", "routing-keys": []any{"orders"}, "time": time.Unix(1700000000, 0).UTC()}}},
		}}
		wg.Add(1)
		if _, err := ch.Publish(m, false, func(err error) {
			if err != nil {
				t.Error(err)
			}
			wg.Done()
		}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}

func waitTask(t *testing.T, w *dlq.Workflow, id string, cond func(api.Task) bool) api.Task {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, ok := w.Task(id)
		if ok && cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s: %+v", id, v)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestTaskResumesAfterRestart: a broker shutdown stops a running task
// without cancelling it; the next start resumes it from its stored
// progress and it finishes with every message moved once. A cancelled
// task stays cancelled.
func TestTaskResumesAfterRestart(t *testing.T) {
	const total = 300
	st := memstore.New()
	b := openBroker(t, st)
	fill(t, b, total)
	w := openWorkflow(t, b)
	task, err := w.StartRedrive(operator{}, "/", "dlq", api.Redrive{Rate: 1000})
	if err != nil {
		t.Fatal(err)
	}
	waitTask(t, w, task.ID, func(v api.Task) bool { return v.Moved >= total/3 })
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	b = openBroker(t, st)
	defer b.Close(context.Background())
	w = openWorkflow(t, b)
	defer w.Close(context.Background())
	v := waitTask(t, w, task.ID, func(v api.Task) bool { return v.State != "running" })
	if v.State != "done" || v.Moved != total || v.Failed != 0 || v.Done != total {
		t.Fatalf("resumed task %+v", v)
	}
	for q, want := range map[string]int{"orders": total, "dlq": 0} {
		if info, _ := b.Queue("/", q); info.Messages() != want {
			t.Errorf("%s holds %d, want %d", q, info.Messages(), want)
		}
	}

	// Cancelled, it is not resumed.
	fill(t, b, 50)
	task, err = w.StartRedrive(operator{}, "/", "dlq", api.Redrive{Rate: 20, Target: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	if v, err = w.Cancel(context.Background(), task.ID); err != nil || v.State != "cancelled" {
		t.Fatalf("cancel: %+v %v", v, err)
	}
	w.Close(context.Background())
	w = openWorkflow(t, b)
	defer w.Close(context.Background())
	if v, ok := w.Task(task.ID); !ok || v.State != "cancelled" || v.Moved != v.Done {
		t.Fatalf("a cancelled task after a restart: %+v %v", v, ok)
	}
}

// browseStates lists the queue's messages as body:state:deliveries.
func browseStates(t *testing.T, w *dlq.Workflow, queue string) []string {
	t.Helper()
	p, err := w.Browse("/", queue, 0, 1000, dlq.Filter{})
	if err != nil {
		t.Fatalf("browse %s: %v", queue, err)
	}
	var out []string
	for _, m := range p.Messages {
		out = append(out, fmt.Sprintf("%s:%s:%d", m.Message.Body, m.State, m.Deliveries))
	}
	return out
}

// TestRedriveSurvivesRestart: redriven messages are in the queue they
// died in only, with x-redrive-count and the routing key they died with,
// after a restart.
func TestRedriveSurvivesRestart(t *testing.T) {
	st := memstore.New()
	b1 := openBroker(t, st)
	fill(t, b1, 4)
	w := openWorkflow(t, b1)
	ids, err := w.MatchingIDs("/", "dlq", dlq.Filter{})
	if err != nil || len(ids) != 4 {
		t.Fatalf("ids %v %v", ids, err)
	}
	res, err := w.RedriveNow(operator{}, "/", "dlq", []uint64{ids[1], ids[3]}, dlq.Target{}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil || r.To != "queue 'orders'" {
			t.Fatalf("result %+v", r)
		}
	}
	w.Close(context.Background())
	if err := b1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	b2 := openBroker(t, st)
	defer b2.Close(context.Background())
	w = openWorkflow(t, b2)
	defer w.Close(context.Background())
	dlqStates, orders := browseStates(t, w, "dlq"), browseStates(t, w, "orders")
	if fmt.Sprint(dlqStates) != "[0:ready:0 2:ready:0]" || fmt.Sprint(orders) != "[1:ready:0 3:ready:0]" {
		t.Fatalf("after restart dlq %v orders %v", dlqStates, orders)
	}
	conn, ch, err := b2.AdminSession("/", "guest")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	d, err := ch.Get("orders", true)
	if err != nil || d == nil {
		t.Fatalf("get: %+v %v", d, err)
	}
	props, err := d.Props()
	if err != nil {
		t.Fatal(err)
	}
	if props.Headers[dlq.RedriveCountHeader] != int64(1) || d.Redelivered || d.RoutingKey != "orders" {
		t.Fatalf("redriven delivery %+v, properties %+v", d, props)
	}
	if _, ok := props.Headers["x-death"]; !ok {
		t.Fatal("x-death dropped")
	}
}
