package broker

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
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

// The values an earlier Sluice wrote without a version byte, as it wrote
// them (strconv's decimal, a bare bits byte, json.Marshal of a Policy).
var beforeVersionBytes = map[string][]byte{
	"next-queue-id":            []byte("43"),
	"delay-queue-id":           []byte("7"),
	"qid/0000000000000007":     {1},
	"qid/000000000000002a":     {1},
	"lim/v/\x00max-queues":     []byte("5"),
	"lim/uops\x00max-channels": []byte("-1"),
	"pol/u/\x00p":              []byte(`{"vhost":"/","name":"p","pattern":"^q$","apply-to":"queues","priority":0,"definition":{"max-length":5}}`),
}

// TestOpensValuesWithoutVersionByte: a store holding the counters, queue
// id flags, limits and policies of the layouts before their version byte
// opens with each value read as it was, and rewritten once, at open, in
// its current layout.
func TestOpensValuesWithoutVersionByte(t *testing.T) {
	st := memstore.New()
	var batch store.Batch
	batch.PutMeta("q//\x00q", hexBytes(t, "01012f01712a0000000000"))
	for k, v := range beforeVersionBytes {
		batch.PutMeta(k, v)
	}
	if err := st.Apply(&batch, true); err != nil {
		t.Fatal(err)
	}
	b := openOn(t, st, newFakeClock())
	if q, err := b.Queue("/", "q"); err != nil || q.Policy != "p" || q.EffectivePolicy["max-length"] != int64(5) {
		t.Fatalf("queue q under the old policy: %+v %v", q, err)
	}
	if ls := b.LimitsOf(VHostLimit, "/"); len(ls) != 1 || ls[0].Values[LimitMaxQueues] != 5 {
		t.Fatalf("vhost limits %+v", ls)
	}
	if ls := b.LimitsOf(UserLimit, "ops"); len(ls) != 1 || ls[0].Values[LimitMaxChannels] != -1 {
		t.Fatalf("user limits %+v", ls)
	}
	if b.delayQID != 7 {
		t.Fatalf("delay queue id %d, want 7", b.delayQID)
	}
	want := map[string]string{
		"next-queue-id":            "012b",
		"delay-queue-id":           "0107",
		"qid/0000000000000007":     "0101",
		"qid/000000000000002a":     "0101",
		"lim/v/\x00max-queues":     "010a",
		"lim/uops\x00max-channels": "0101",
		"pol/u/\x00p":              "01" + hex.EncodeToString(beforeVersionBytes["pol/u/\x00p"]),
	}
	checkMeta := func(when string) {
		t.Helper()
		for k, w := range want {
			v, err := st.GetMeta(k)
			if err != nil || hex.EncodeToString(v) != w {
				t.Errorf("%s: %q holds %x (%v), want %s", when, k, v, err, w)
			}
		}
	}
	checkMeta("after open")

	// The counter goes on from where it was, in the new layout.
	newClient(t, b).declareQueue("next", true, nil)
	if id := b.vhosts["/"].queues["next"].id; id != 43 {
		t.Fatalf("the next queue's id %d, want 43", id)
	}
	want["next-queue-id"], want["qid/000000000000002b"] = "012c", "0101"
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	b = openOn(t, st, newFakeClock())
	checkMeta("after a second open")
	if q, err := b.Queue("/", "next"); err != nil || !q.Durable {
		t.Fatalf("queue next: %+v %v", q, err)
	}
}

// TestRefusesUnknownVersion: a value in no layout this Sluice knows (a
// newer one's) stops the open with an error naming it, and nothing is
// rewritten.
func TestRefusesUnknownVersion(t *testing.T) {
	for key, v := range map[string][]byte{
		"next-queue-id":        {0x02, 0x2b},
		"delay-queue-id":       {0x09},
		"qid/000000000000002a": {0x02, 0x01},
		"lim/v/\x00max-queues": {0x02, 0x0a},
		"pol/u/\x00p":          {0x02, '{', '}'},
	} {
		st := memstore.New()
		var batch store.Batch
		batch.PutMeta("lim/uops\x00max-channels", []byte("-1")) // old layout: stays as it is
		batch.PutMeta(key, v)
		if err := st.Apply(&batch, true); err != nil {
			t.Fatal(err)
		}
		_, err := Open(testConfig(), st)
		if err == nil || !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), fmt.Sprintf("%q", key)) ||
			!strings.Contains(err.Error(), fmt.Sprintf("unknown version 0x%02x", v[0])) {
			t.Errorf("%q = %x: open: %v", key, v, err)
		}
		if got, _ := st.GetMeta("lim/uops\x00max-channels"); string(got) != "-1" {
			t.Errorf("%q = %x: a refused open rewrote another record: %x", key, v, got)
		}
	}
}

func hexBytes(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
