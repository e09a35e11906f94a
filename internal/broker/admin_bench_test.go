package broker

import (
	"fmt"
	"testing"
)

// fillDeadLetters puts n dead letters of queue orders into dlq.
func fillDeadLetters(b *testing.B, n int) (*Broker, []uint64) {
	br := openBroker(b, nil)
	c := newClient(b, br)
	c.declareQueue("orders", true, nil)
	c.declareQueue("dlq", true, nil)
	for i := range n {
		c.publishMsg(deadLetter("orders", fmt.Sprintf(`{"order":%d}`, i)))
	}
	ids, err := br.MatchingIDs("/", "dlq", Filter{}, 0)
	if err != nil || len(ids) != n {
		b.Fatalf("ids: %d %v", len(ids), err)
	}
	return br, ids
}

// BenchmarkBrowse100k pages through 100k dead letters, 500 at a time.
func BenchmarkBrowse100k(b *testing.B) {
	br, _ := fillDeadLetters(b, 100_000)
	b.ResetTimer()
	for range b.N {
		var after uint64
		n := 0
		for {
			p, err := br.Browse("/", "dlq", after, 500, Filter{Reason: "rejected"})
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

// BenchmarkRedrive100k moves 100k dead letters back, 100 per call as the
// HTTP task does.
func BenchmarkRedrive100k(b *testing.B) {
	for range b.N {
		b.StopTimer()
		br, ids := fillDeadLetters(b, 100_000)
		b.StartTimer()
		for i := 0; i < len(ids); i += 100 {
			res, err := br.Redrive("/", "dlq", ids[i:min(i+100, len(ids))], MoveTarget{}, false)
			if err != nil || res[0].Err != nil {
				b.Fatalf("redrive: %v %v", err, res[0].Err)
			}
		}
		if q, _ := br.Queue("/", "orders"); q.Ready != 100_000 {
			b.Fatalf("orders holds %d", q.Ready)
		}
	}
}
