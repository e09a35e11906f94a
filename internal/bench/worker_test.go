package bench

import (
	"sync"
	"testing"
	"time"
)

func TestStampRoundTrip(t *testing.T) {
	body := newBody(64)
	stampBody(body, 1234567*time.Microsecond, 3<<40|99)
	at, id, ok := readStamp(body)
	if !ok || at != 1234567*time.Microsecond || id != 3<<40|99 {
		t.Errorf("readStamp = %v, %d, %v; want 1.234567s, %d, true", at, id, ok, uint64(3<<40|99))
	}
	if body[63] == 0 {
		t.Error("filler not written")
	}
	if _, _, ok := readStamp(body[:15]); ok {
		t.Error("readStamp accepted a 15-byte body")
	}
}

func TestChurnTable(t *testing.T) {
	tab := &churnTable{counts: make(map[uint64]int)}
	const requeues = 3
	var got []bool
	for range requeues + 1 {
		got = append(got, tab.deliver(7, requeues))
	}
	want := []bool{true, true, true, false}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("deliveries of one message: requeue = %v, want %v", got, want)
		}
	}
	if len(tab.counts) != 0 {
		t.Errorf("acked message still tracked: %v", tab.counts)
	}
	if !tab.deliver(7, requeues) {
		t.Error("a message seen again after its ack starts over: want requeue")
	}
}

func TestClaimLimitUnderConcurrency(t *testing.T) {
	p := newPhaseRun(1000, 0, 0)
	var mu sync.Mutex
	total := 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			n := 0
			for p.claim() {
				n++
			}
			mu.Lock()
			total += n
			mu.Unlock()
		})
	}
	wg.Wait()
	if total != 1000 {
		t.Errorf("publishers claimed %d messages, want exactly the limit 1000", total)
	}
	if unlimited := newPhaseRun(0, 0, 0); !unlimited.claim() {
		t.Error("a phase without limit refused a claim")
	}
}

func TestCheckDone(t *testing.T) {
	tests := []struct {
		name                   string
		drain                  int64
		pubsDone, confirms     bool
		sent, confirmed, acked int64
		wantDone               bool
	}{
		{name: "publishers running", sent: 10, confirmed: 10, acked: 10},
		{name: "all confirmed acked", pubsDone: true, confirms: true, sent: 10, confirmed: 9, acked: 9, wantDone: true},
		{name: "confirmed not yet acked", pubsDone: true, confirms: true, sent: 10, confirmed: 10, acked: 9},
		{name: "without confirms counts sent", pubsDone: true, sent: 10, confirmed: 0, acked: 9},
		{name: "without confirms all sent acked", pubsDone: true, sent: 10, acked: 10, wantDone: true},
		{name: "drain short", drain: 5, acked: 4},
		{name: "drain reached", drain: 5, acked: 5, wantDone: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPhaseRun(0, tt.drain, 0)
			p.publishersDone.Store(tt.pubsDone)
			p.sent.Store(tt.sent)
			p.confirmed.Store(tt.confirmed)
			p.acked.Store(tt.acked)
			p.checkDone(tt.confirms)
			p.checkDone(tt.confirms) // closing twice must not panic
			if got := isClosed(p.done); got != tt.wantDone {
				t.Errorf("done = %v, want %v", got, tt.wantDone)
			}
		})
	}
}

func TestProgressLine(t *testing.T) {
	p := newPhaseRun(0, 0, 0)
	if got, want := progressLine("drain", 5*time.Second, p), "drain   5.0s:"; got != want {
		t.Errorf("idle progress = %q, want %q", got, want)
	}
	p.consumed.Store(500)
	if got, want := progressLine("drain", 5*time.Second, p), "drain   5.0s: consumed 500 (100/s)"; got != want {
		t.Errorf("drain progress = %q, want %q", got, want)
	}
	p2 := newPhaseRun(0, 0, 0)
	p2.sent.Store(10)
	p2.confirmed.Store(9)
	if got, want := progressLine("publish", time.Second, p2), "publish   1.0s: sent 10 (10/s), confirmed 9"; got != want {
		t.Errorf("publish progress = %q, want %q", got, want)
	}
	p.sent.Store(1000)
	p.confirmed.Store(900)
	p.requeued.Store(7)
	want := "churn  10.0s: sent 1000 (100/s), confirmed 900, consumed 500 (50/s), requeued 7"
	if got := progressLine("churn", 10*time.Second, p); got != want {
		t.Errorf("churn progress = %q, want %q", got, want)
	}
}
