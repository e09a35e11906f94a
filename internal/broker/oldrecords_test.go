package broker

import (
	"encoding/hex"
	"testing"

	"github.com/sluicemq/sluice/internal/store"
	"github.com/sluicemq/sluice/internal/store/memstore"
)

// TestOpensRecordsOfEarlierVersions: a store holding values written by the
// broker before the encodings moved to package records (bytes captured from
// that code; the queue's vhost byte edited from "v" to "/") opens, and the
// queue, its exchange and its message come back as they were.
func TestOpensRecordsOfEarlierVersions(t *testing.T) {
	const (
		exchange = "01012f02657805746f706963050000003516782d646561642d6c65747465722d65786368616e67655300000003646c780c782d6d61782d6c656e6774686c000000000000000a"
		queue    = "01012f01712a010000003516782d646561642d6c65747465722d65786368616e67655300000003646c780c782d6d61782d6c656e6774686c000000000000000a"
		record   = "01010000018bcfe5687b02657802726b00000021b9000a746578742f706c61696e000000080168530000000176020505363030303068656c6c6f"
		index    = "010105f6a1abfef962c0a90705"
		state    = "0107"
	)
	hx := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	st := memstore.New()
	var batch store.Batch
	batch.PutMeta("x//\x00ex", hx(exchange))
	batch.PutMeta("q//\x00q", hx(queue))
	batch.PutMeta("qid/000000000000002a", []byte{1})
	batch.PutMeta("next-queue-id", []byte("43"))
	batch.PutIndexed(42, 1, hx(record), hx(index))
	batch.PutState(42, 1, hx(state))
	if err := st.Apply(&batch, true); err != nil {
		t.Fatal(err)
	}
	b := openOn(t, st, newFakeClock())
	vh := b.vhosts["/"]
	if x := vh.exchanges["ex"]; x == nil || !x.durable || !x.internal {
		t.Fatalf("exchange ex: %+v", x)
	}
	q := vh.queues["q"]
	if q == nil || q.id != 42 || !q.autoDelete {
		t.Fatalf("queue q: %+v", q)
	}
	d := newClient(t, b).get("q", true)
	if d == nil || string(d.Body) != "hello" || d.Exchange != "ex" || d.RoutingKey != "rk" || !d.Redelivered ||
		d.Properties.Priority != 5 || d.Properties.Expiration != "60000" || d.Properties.ContentType != "text/plain" {
		t.Fatalf("message: %+v", d)
	}
}
