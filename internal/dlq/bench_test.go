package dlq_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/broker"
	"github.com/sluicemq/sluice/internal/store/pebblestore"
)

const benchMessages = 10000

// benchRedrive measures moving benchMessages dead letters back on Pebble,
// by redrive, which runs one iteration's moves.
func benchRedrive(b *testing.B, redrive func(t *testing.T, br *broker.Broker)) {
	for range b.N {
		b.StopTimer()
		t := &testing.T{}
		st, err := pebblestore.Open(b.TempDir(), pebblestore.DefaultOptions())
		if err != nil {
			b.Fatal(err)
		}
		br := openBroker(t, st)
		fill(t, br, benchMessages)
		b.StartTimer()
		redrive(t, br)
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
	benchRedrive(b, func(t *testing.T, br *broker.Broker) {
		w := openWorkflowChunk(t, br, 100)
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
	benchRedrive(b, func(t *testing.T, br *broker.Broker) {
		ids, err := br.MatchingIDs("/", "dlq", broker.Filter{}, 0)
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < len(ids); i += 100 {
			if _, err := br.Redrive("/", "dlq", ids[i:min(i+100, len(ids))], broker.MoveTarget{}, false); err != nil {
				b.Fatal(err)
			}
		}
	})
}
