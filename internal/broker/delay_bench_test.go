package broker

import (
	"context"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/store/pebblestore"
)

// BenchmarkDelayedMillion publishes SLUICE_BENCH_DELAYED (default 1,000,000)
// persistent messages with x-delay to a broker on the durable store, then
// moves the clock past their delay and releases them all into a queue. It
// reports the publish and release rates and the Go heap in use while they
// wait (after a GC), which must not grow with their number. Run with
// -benchtime=1x:
//
//	go test ./internal/broker -run '^$' -bench DelayedMillion -benchtime=1x
func BenchmarkDelayedMillion(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("SLUICE_BENCH_DELAYED"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	for range b.N {
		benchDelayed(b, n)
	}
}

func benchDelayed(b *testing.B, n int) {
	sopts := pebblestore.DefaultOptions()
	sopts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := pebblestore.Open(b.TempDir(), sopts)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	clock := newFakeClock()
	cfg := testConfig()
	cfg.Now = clock.Now
	br, err := Open(cfg, st)
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close(context.Background())
	c := newClient(b, br)
	c.declareQueue("later", true, nil)

	heapBefore := heapInUse()
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(n)
	done := func(err error) {
		if err != nil {
			b.Error(err)
		}
		wg.Done()
	}
	for i := range n {
		m := newMsg("", "later", "0123456789012345678901234567890123456789", true)
		m.Properties.Headers = message.Table{"x-delay": int64(60_000 + i%1000)}
		m.Properties.Flags |= message.FlagHeaders
		if _, err := c.ch.Publish(m, false, done); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	publish := time.Since(start)
	heapWaiting := heapInUse()

	q, _ := br.lookupQueue("/", "later")
	clock.advance(2 * time.Minute)
	start = time.Now()
	for {
		br.env.delays.releaseDue()
		if ready, _ := q.counts(); int(ready) == n {
			break
		}
		if time.Since(start) > 10*time.Minute {
			b.Fatalf("released %d of %d", q.ready.len(), n)
		}
		time.Sleep(time.Millisecond)
	}
	release := time.Since(start)
	b.ReportMetric(float64(n)/publish.Seconds(), "publish/s")
	b.ReportMetric(float64(n)/release.Seconds(), "release/s")
	b.ReportMetric(float64(heapWaiting-heapBefore)/(1<<20), "heap-MiB-while-waiting")
	b.Logf("%d delayed messages: publish %v, release %v, heap in use %.1f MiB before, %.1f MiB while waiting",
		n, publish.Round(time.Millisecond), release.Round(time.Millisecond),
		float64(heapBefore)/(1<<20), float64(heapWaiting)/(1<<20))
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// BenchmarkDelayLateness measures how late delayed messages reach their
// queue with the real clock: 2,000 messages due over one second.
func BenchmarkDelayLateness(b *testing.B) {
	for range b.N {
		br := openBroker(b, nil)
		c := newClient(b, br)
		c.declareQueue("later", false, nil)
		const n = 2000
		sent := make([]time.Time, n)
		for i := range n {
			sent[i] = time.Now()
			m := newMsg("", "later", strconv.Itoa(i), false)
			m.Properties.Headers = message.Table{"x-delay": int64(100 + i/2)}
			m.Properties.Flags |= message.FlagHeaders
			c.publishMsg(m)
		}
		var worst time.Duration
		got := 0
		for got < n {
			d := c.get("later", true)
			if d == nil {
				time.Sleep(200 * time.Microsecond)
				continue
			}
			i, _ := strconv.Atoi(string(d.Body))
			due := sent[i].Add(time.Duration(100+i/2) * time.Millisecond)
			worst = max(worst, time.Since(due))
			got++
		}
		b.ReportMetric(float64(worst.Microseconds())/1000, "worst-late-ms")
	}
}
