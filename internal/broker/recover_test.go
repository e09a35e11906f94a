package broker

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/records"
	"github.com/sluicemq/sluice/internal/store"
	"github.com/sluicemq/sluice/internal/store/memstore"
	"github.com/sluicemq/sluice/internal/store/storetest"
)

// recordReads counts the reads of message records (Scan and Get).
type recordReads struct {
	store.Store
	scans, gets atomic.Int64
}

func (s *recordReads) Scan(q store.QueueID, from uint64, fn func(uint64, []byte) bool) error {
	s.scans.Add(1)
	return s.Store.Scan(q, from, fn)
}

func (s *recordReads) Get(q store.QueueID, seq uint64) ([]byte, error) {
	s.gets.Add(1)
	return s.Store.Get(q, seq)
}

func prioMsg(key, body string, prio uint8) *message.Message {
	m := newMsg("", key, body, true)
	m.Properties.Priority = prio
	m.Properties.Flags |= message.FlagPriority
	return m
}

func ttlMsg(key, body string, ttlMs int) *message.Message {
	m := newMsg("", key, body, true)
	m.Properties.Expiration = fmt.Sprint(ttlMs)
	m.Properties.Flags |= message.FlagExpiration
	return m
}

// drainBodies takes every ready message of queue (no-ack) and describes
// each as body:redelivered:count.
func (c *testClient) drainBodies(queue string) []string {
	c.t.Helper()
	var got []string
	for {
		d := c.get(queue, true)
		if d == nil {
			return got
		}
		n, _ := d.Properties.Headers["x-delivery-count"].(int64)
		got = append(got, fmt.Sprintf("%s:%v:%d", d.Body, d.Redelivered, n))
	}
}

// Open rebuilds the queues from the index entries alone, with the same
// result as from the records: order, redelivered flags and counts,
// priorities, TTLs; transient messages and the leftovers of non-durable
// and deleted queues are gone.
func TestRecoverFromIndex(t *testing.T) {
	clock := newFakeClock()
	st := &recordReads{Store: memstore.New()}
	b1 := openOn(t, st, clock)
	c := newClient(t, b1)
	c.declareQueue("dq", true, nil)
	c.declareQueue("pq", true, message.Table{"x-max-priority": int32(5)})
	c.declareQueue("ttl", true, message.Table{"x-message-ttl": int32(60_000)})
	c.declareQueue("tq", false, nil)
	c.declareQueue("gone", true, nil)
	for _, m := range []struct {
		body       string
		persistent bool
	}{{"p1", true}, {"t1", false}, {"p2", true}, {"p3", true}, {"t2", false}} {
		c.publish("", "dq", m.body, m.persistent)
		c.publish("", "tq", m.body, m.persistent)
		c.publish("", "gone", m.body, m.persistent)
	}
	for _, p := range []uint8{1, 5, 3, 9} {
		c.publishMsg(prioMsg("pq", fmt.Sprint("prio", p), p))
	}
	c.publishMsg(ttlMsg("ttl", "short", 1_000))  // dies after 1 s
	c.publishMsg(ttlMsg("ttl", "long", 120_000)) // the queue's 60 s wins
	c.publish("", "ttl", "plain", true)
	// p1 stays unacked (count 1); p2 is delivered, returned and delivered
	// again (count 2), unacked; t1 was delivered and acked.
	c.get("dq", false)
	for i := range 2 {
		d := c.get("dq", false)
		if i == 0 && string(d.Body) == "t1" {
			if err := c.ch.Ack(d.DeliveryTag, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.ch.Close() // returns p1 and p2 (count 1 each)
	c = c.channel(2)
	c.get("dq", false) // p1, count 2
	c.get("dq", false) // p2, count 2
	c.get("dq", false) // p3, count 1
	ids := map[string]store.QueueID{}
	for _, name := range []string{"dq", "tq", "gone"} {
		ids[name] = b1.vhosts["/"].queues[name].id
	}
	if _, err := c.ch.DeleteQueue("gone", false, false); err != nil {
		t.Fatal(err)
	}
	if err := b1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	st.scans.Store(0)
	st.gets.Store(0)
	clock.advance(30 * time.Second)
	b2 := openOn(t, st, clock)
	if n, g := st.scans.Load(), st.gets.Load(); n != 0 || g != 0 {
		t.Errorf("Open read message records: %d scans, %d gets", n, g)
	}
	c2 := newClient(t, b2)
	tests := []struct {
		queue string
		want  []string
	}{
		{"dq", []string{"p1:true:2", "p2:true:2", "p3:true:1"}},
		{"pq", []string{"prio5:false:0", "prio9:false:0", "prio3:false:0", "prio1:false:0"}}, // 9 is clamped to 5
		{"ttl", []string{"long:false:0", "plain:false:0"}},
	}
	for _, tt := range tests {
		if got := c2.drainBodies(tt.queue); !slices.Equal(got, tt.want) {
			t.Errorf("%s after restart: %v, want %v", tt.queue, got, tt.want)
		}
	}
	for _, name := range []string{"tq", "gone"} {
		if n := countMessages(t, st, ids[name]); n != 0 {
			t.Errorf("%d messages of %s left in the store", n, name)
		}
		var idx int
		if err := st.ScanIndex(ids[name], 0, func(uint64, []byte) bool { idx++; return true }); err != nil || idx != 0 {
			t.Errorf("%d index entries of %s left in the store (%v)", idx, name, err)
		}
	}
	// The transient messages' records and index entries went too (read
	// through the write-behind, which holds the no-ack gets' deletes).
	var left []uint64
	if err := b2.env.st.ScanIndex(ids["dq"], 0, func(seq uint64, _ []byte) bool { left = append(left, seq); return true }); err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("index entries of dq left after draining: %v", left)
	}
	// Seqs continue above every seq used before, even the deleted transient
	// t2 at the tail.
	c2.publish("", "dq", "after", true)
	if q := b2.vhosts["/"].queues["dq"]; q.nextSeq != 7 {
		t.Errorf("dq's next seq after restart and one publish: %d, want 7", q.nextSeq)
	}
}

// An index entry that does not decode is rebuilt from the message record;
// when the record does not decode either, the message is dropped.
func TestRecoverUnreadableIndex(t *testing.T) {
	st := memstore.New()
	b1, err := Open(testConfig(), st)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, b1)
	c.declareQueue("q", true, nil)
	for _, body := range []string{"a", "b", "c"} {
		c.publishMsg(ttlMsg("q", body, 3_600_000))
	}
	id := b1.vhosts["/"].queues["q"].id
	if err := b1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	recB, err := st.Get(id, 2)
	if err != nil {
		t.Fatal(err)
	}
	var batch store.Batch
	batch.DeleteMessage(id, 2)
	batch.PutIndexed(id, 2, recB, []byte{99, 1, 2}) // unknown version
	batch.DeleteMessage(id, 3)
	batch.PutIndexed(id, 3, []byte{1}, []byte{}) // both unreadable
	if err := st.Apply(&batch, true); err != nil {
		t.Fatal(err)
	}

	b2 := openBroker(t, st)
	q := b2.vhosts["/"].queues["q"]
	q.mu.Lock()
	es := q.ready.takeAll()
	q.mu.Unlock()
	slices.SortFunc(es, func(x, y entry) int { return compareSeq(x.seq, y.seq) })
	if len(es) != 2 || es[0].seq != 1 || es[1].seq != 2 {
		t.Fatalf("recovered entries %+v, want seqs 1 and 2", es)
	}
	if es[1].size != 1 || es[1].expires == 0 || es[1].flags&entryPersistent == 0 {
		t.Errorf("entry rebuilt from the record: %+v", es[1])
	}
	if _, err := st.Get(id, 3); err == nil {
		t.Errorf("unreadable message 3 left in the store")
	}
}

func TestIndexEncoding(t *testing.T) {
	for _, x := range []records.Index{
		{},
		{Persistent: true, Size: 1 << 20, PubMs: 1_700_000_000_000, TTL: -1, Prio: 9},
		{Size: 1<<32 - 1, PubMs: -5, TTL: 1 << 40, Prio: 255},
	} {
		got, err := records.DecodeIndex(records.EncodeIndex(x))
		if err != nil || got != x {
			t.Errorf("round trip of %+v: %+v, %v", x, got, err)
		}
	}
	enc := records.EncodeIndex(records.Index{Persistent: true, Size: 300, PubMs: 1, TTL: 2, Prio: 3})
	for n := range len(enc) {
		if _, err := records.DecodeIndex(enc[:n]); err == nil {
			t.Errorf("truncated to %d bytes: no error", n)
		}
	}
	if _, err := records.DecodeIndex(append(enc, 0)); err == nil {
		t.Errorf("trailing byte: no error")
	}
}

// countWrites counts the operations applied to the store it wraps.
type countWrites struct {
	store.Store
	ops atomic.Int64
}

func (s *countWrites) Apply(b *store.Batch, sync bool) error {
	s.ops.Add(int64(b.Len()))
	return s.Store.Apply(b, sync)
}

func (s *countWrites) ApplyAsync(b *store.Batch) (func() error, error) {
	s.ops.Add(int64(b.Len()))
	return s.Store.ApplyAsync(b)
}

// A restart over an unchanged backlog writes nothing: with Pebble, every
// write at start is a memtable flush at the next start, and those used to
// pile up as overlapping L0 files that set off a compaction of the whole
// backlog in the middle of a later recovery.
func TestRestartWritesNothingWhenNothingChanged(t *testing.T) {
	clock := newFakeClock()
	st := &countWrites{Store: memstore.New()}
	b := openOn(t, st, clock)
	c := newClient(t, b)
	c.declareQueue("backlog", true, nil)
	for i := range 5 {
		c.publish("", "backlog", fmt.Sprint("m", i), true)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The first restart may tidy up after the first run; the ones after it
	// find nothing to change.
	for restart := range 3 {
		before := st.ops.Load()
		b = openOn(t, st, clock)
		if n := b.vhosts["/"].queues["backlog"].ready.len(); n != 5 {
			t.Fatalf("restart %d: %d ready messages, want 5", restart, n)
		}
		if err := b.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if written := st.ops.Load() - before; restart > 0 && written != 0 {
			t.Errorf("restart %d wrote %d operations over an unchanged backlog, want 0", restart, written)
		}
	}
}

// First deliveries of messages taken in seq order write no per-message
// state: the queue's delivered mark covers them, and after a restart they
// still come back redelivered with a count of 1. A redelivery writes its
// own count.
func TestDeliveredMark(t *testing.T) {
	clock := newFakeClock()
	st := storetest.NewRecording(memstore.New())
	b1 := openOn(t, st, clock)
	c := newClient(t, b1)
	c.declareQueue("q", true, nil)
	for i := 1; i <= 6; i++ {
		c.publish("", "q", fmt.Sprint("m", i), true)
	}
	c.get("q", false)       // m1
	d2 := c.get("q", false) // m2
	c.get("q", false)       // m3
	if err := c.ch.Nack(d2.DeliveryTag, false, true); err != nil {
		t.Fatal(err)
	}
	c.get("q", false)                                                             // m2 again: count 2
	if err := c.ch.Nack(c.get("q", false).DeliveryTag, false, true); err != nil { // m4
		t.Fatal(err)
	}
	c.get("q", false) // m4 again: count 2
	id := b1.vhosts["/"].queues["q"].id
	if err := b1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var states []uint64
	marks := 0
	for _, o := range st.Ops() {
		if o.Op.Queue == id && o.Op.Kind == store.OpPutState {
			if o.Op.Seq == records.MarkSeq {
				marks++
			} else {
				states = append(states, o.Op.Seq)
			}
		}
	}
	if want := []uint64{2, 4}; !slices.Equal(states, want) || marks == 0 {
		t.Errorf("per-message states written for seqs %v (and %d marks), want %v and a mark", states, marks, want)
	}

	b2 := openOn(t, st, clock)
	c2 := newClient(t, b2)
	want := []string{"m1:true:1", "m2:true:2", "m3:true:1", "m4:true:2", "m5:false:0", "m6:false:0"}
	if got := c2.drainBodies("q"); !slices.Equal(got, want) {
		t.Errorf("after restart: %v, want %v", got, want)
	}
}
