package dlq_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/broker"
	"github.com/sluicemq/sluice/internal/dlq"
	"github.com/sluicemq/sluice/internal/store/pebblestore"
)

const benchMessages = 10000

// benchRedrive measures moving benchMessages dead letters back on Pebble,
// by redrive, which runs one iteration's moves.
func benchRedrive(b *testing.B, redrive func(br *broker.Broker)) {
	for range b.N {
		b.StopTimer()
		st, err := pebblestore.Open(b.TempDir(), pebblestore.DefaultOptions())
		if err != nil {
			b.Fatal(err)
		}
		br := openBroker(b, st)
		fill(b, br, benchMessages)
		b.StartTimer()
		redrive(br)
		b.StopTimer()
		if q, _ := br.Queue("/", "orders"); q.Ready != benchMessages {
			b.Fatalf("orders holds %d", q.Ready)
		}
		br.Close(context.Background())
		st.Close()
	}
}

// BenchmarkRedriveTask: a durable task (progress in every move's batch).
func BenchmarkRedriveTask(b *testing.B) {
	benchRedrive(b, func(br *broker.Broker) {
		w := openWorkflowChunk(b, br, 100)
		defer w.Close(context.Background())
		task, err := w.StartRedrive(operator{}, "/", "dlq", api.Redrive{})
		if err != nil {
			b.Fatal(err)
		}
		for {
			if v, _ := w.Task(task.ID); v.State != "running" {
				break
			}
			time.Sleep(time.Millisecond)
		}
	})
}

// BenchmarkRedriveMoves: the same moves, 100 per call, without a task.
func BenchmarkRedriveMoves(b *testing.B) {
	benchRedrive(b, func(br *broker.Broker) {
		w := openWorkflow(b, br)
		defer w.Close(context.Background())
		redriveAll(b, w, dlqIDs(b, w))
	})
}

// dlqIDs returns the ids of the messages of dlq.
func dlqIDs(b *testing.B, w *dlq.Workflow) []uint64 {
	ids, err := w.MatchingIDs("/", "dlq", dlq.Filter{})
	if err != nil {
		b.Fatal(err)
	}
	return ids
}

// redriveAll moves the messages ids of dlq back, 100 per call as a task
// does, without a task.
func redriveAll(b *testing.B, w *dlq.Workflow, ids []uint64) {
	for i := 0; i < len(ids); i += 100 {
		res, err := w.RedriveNow(operator{}, "/", "dlq", ids[i:min(i+100, len(ids))], dlq.Target{}, false)
		if err != nil || res[0].Err != nil {
			b.Fatalf("redrive: %v %v", err, res[0].Err)
		}
	}
}

// BenchmarkBrowse100k pages through 100k dead letters in memory, 500 at a
// time, filtered by reason.
func BenchmarkBrowse100k(b *testing.B) {
	br := openBroker(b, nil)
	fill(b, br, 100_000)
	w := openWorkflow(b, br)
	defer w.Close(context.Background())
	b.ResetTimer()
	for range b.N {
		var after uint64
		n := 0
		for {
			p, err := w.Browse("/", "dlq", after, 500, dlq.Filter{Reason: "rejected"})
			if err != nil {
				b.Fatal(err)
			}
			n += len(p.Messages)
			if !p.More {
				break
			}
			after = p.Next
		}
		if n != 100_000 {
			b.Fatalf("browsed %d", n)
		}
	}
}

// BenchmarkRedrive100k moves 100k dead letters back in memory, 100 per
// call as a task does.
func BenchmarkRedrive100k(b *testing.B) {
	for range b.N {
		b.StopTimer()
		br := openBroker(b, nil)
		fill(b, br, 100_000)
		w := openWorkflow(b, br)
		ids := dlqIDs(b, w)
		b.StartTimer()
		redriveAll(b, w, ids)
		b.StopTimer()
		if q, _ := br.Queue("/", "orders"); q.Ready != 100_000 {
			b.Fatalf("orders holds %d", q.Ready)
		}
		w.Close(context.Background())
	}
}
