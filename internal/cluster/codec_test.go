package cluster

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/sluicemq/sluice/internal/store"
	"github.com/sluicemq/sluice/internal/store/memstore"
)

func sampleOps(q store.QueueID) []store.Op {
	var b store.Batch
	b.PutIndexed(q, 1, []byte("one"), []byte{1, 2})
	b.PutMessage(q, 2, []byte{})
	b.PutState(q, 1, []byte{0, 0, 0, 3})
	b.PutDelay(-17, q, 2)
	b.DeleteRange(q, 2, 9)
	b.SetFloor(q, 2)
	b.DeleteMessage(q, 1)
	return b.Ops
}

func TestOpsRoundTrip(t *testing.T) {
	q := NewQueueID()
	ops := sampleOps(q)
	got, err := decodeOps(encodeOps(nil, ops), q)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ops {
		if ops[i].Value == nil && got[i].Value != nil && len(got[i].Value) == 0 {
			got[i].Value = nil
		}
	}
	if !reflect.DeepEqual(got, ops) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, ops)
	}
	data := encodeOps(nil, ops)
	for n := range len(data) {
		if _, err := decodeOps(data[:n], q); !errors.Is(err, errBadCommand) {
			t.Fatalf("truncated to %d bytes: %v, want errBadCommand", n, err)
		}
	}
}

// The state machine is the store ops of the log: the same entries applied
// to three copies give the same state.
func TestSameEntriesSameState(t *testing.T) {
	q := NewQueueID()
	var log [][]byte
	for i := uint64(1); i <= 200; i++ {
		var b store.Batch
		b.PutIndexed(q, i, fmt.Appendf(nil, "m%d", i), []byte{byte(i)})
		if i%3 == 0 {
			b.DeleteMessage(q, i-2)
		}
		if i%7 == 0 {
			b.PutState(q, i-1, []byte{0, 0, 0, byte(i)})
		}
		if i%50 == 0 {
			b.SetFloor(q, i-10)
		}
		log = append(log, appendCommand(nil, command{kind: cmdOps, proposer: 1, id: i, body: encodeOps(nil, b.Ops)}))
	}
	var dumps []string
	for range 3 {
		st := memstore.New()
		for _, data := range log {
			c, err := decodeCommand(data)
			if err != nil {
				t.Fatal(err)
			}
			ops, err := decodeOps(c.body, q)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Apply(&store.Batch{Ops: ops}, false); err != nil {
				t.Fatal(err)
			}
		}
		dumps = append(dumps, dump(t, st, q))
	}
	if dumps[0] != dumps[1] || dumps[1] != dumps[2] {
		t.Errorf("copies differ:\n%s\n%s\n%s", dumps[0], dumps[1], dumps[2])
	}
}

func dump(t *testing.T, st store.Store, q store.QueueID) string {
	s := fmt.Sprint(contents(t, st, q))
	st.ScanIndex(q, 0, func(seq uint64, idx []byte) bool { s += fmt.Sprintf(" i%d=%x", seq, idx); return true })
	st.ScanState(q, func(seq uint64, v []byte) bool { s += fmt.Sprintf(" s%d=%x", seq, v); return true })
	f, _ := st.Floor(q)
	return s + fmt.Sprintf(" floor=%d", f)
}
