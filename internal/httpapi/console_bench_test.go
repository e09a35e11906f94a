package httpapi_test

// Benchmarks for what the web console asks of the API: the queue list
// with 10,000 queues and the message browser over a long dead-letter
// queue (SLUICE_BENCH_DLQ messages, default 100,000). Run by hand:
//
//	go test -run '^$' -bench Console -benchtime 20x ./internal/httpapi/
//	SLUICE_BENCH_DLQ=1000000 go test -run '^$' -bench ConsoleBrowse -benchtime 20x ./internal/httpapi/

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func benchGet(b *testing.B, e *testEnv, path string) {
	b.Helper()
	req, err := http.NewRequest("GET", e.url+path, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.SetBasicAuth("guest", "guest")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		b.Fatalf("GET %s: %d", path, res.StatusCode)
	}
	b.ReportMetric(float64(n), "bytes/op")
}

func BenchmarkConsoleQueueList(b *testing.B) {
	e := startBench(b)
	ch := benchChannel(b, e)
	for i := range 10000 {
		if _, err := ch.QueueDeclare(fmt.Sprintf("q-%05d", i), false, false, false, false, nil); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range []struct{ name, path string }{
		{"page1", "/api/queues?page=1&page_size=50&name=&use_regex=false&sort=name&sort_reverse=false"},
		{"filtered", "/api/queues?page=1&page_size=50&name=q-09&use_regex=false&sort=messages_ready&sort_reverse=true"},
		{"last-page", "/api/queues?page=200&page_size=50&sort=name"},
		{"unpaged", "/api/queues"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				benchGet(b, e, c.path)
			}
		})
	}
}

func BenchmarkConsoleBrowseDLQ(b *testing.B) {
	n := 100000
	if v := os.Getenv("SLUICE_BENCH_DLQ"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	e := startBench(b)
	ch := benchChannel(b, e)
	if _, err := ch.QueueDeclare("big.dlq", false, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	death := amqp.Table{"x-death": []any{amqp.Table{"count": int64(1), "reason": "rejected", "queue": "orders",
		"time": time.Now(), "exchange": "", "routing-keys": []any{"orders"}}}}
	for i := range n {
		body := fmt.Sprintf(`{"order":%d,"sku":"sku-%d","amount":%d}`, i, i, i%1000)
		if i == n-1 {
			body = `{"order":"last","sku":"NEEDLE"}`
		}
		if err := ch.PublishWithContext(context.Background(), "", "big.dlq", false, false,
			amqp.Publishing{Headers: death, ContentType: "application/json", Body: []byte(body)}); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		q, err := e.c.Queue(context.Background(), "/", "big.dlq")
		if err == nil && q.Messages == n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("big.dlq holds %d of %d", q.Messages, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Logf("filled %d messages in %v", n, time.Since(start))
	// A consumer holds five, so the state filter has unacked ones to find.
	hold := benchChannel(b, e)
	if err := hold.Qos(5, 0, false); err != nil {
		b.Fatal(err)
	}
	if _, err := hold.Consume("big.dlq", "", false, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, path string }{
		{"head", "/api/queues/%2F/big.dlq/messages?limit=50"},
		{"middle", fmt.Sprintf("/api/queues/%%2F/big.dlq/messages?limit=50&after=%d", n/2)},
		{"reason", fmt.Sprintf("/api/queues/%%2F/big.dlq/messages?limit=50&reason=rejected&source=orders&after=%d", n/2)},
		{"body-text-miss", "/api/queues/%2F/big.dlq/messages?limit=50&body=NEEDLE"},
		{"state-ready", fmt.Sprintf("/api/queues/%%2F/big.dlq/messages?limit=50&state=ready&after=%d", n/2)},
		{"state-unacked", "/api/queues/%2F/big.dlq/messages?limit=50&state=unacked"},
		{"state-delayed-none", "/api/queues/%2F/big.dlq/messages?limit=50&state=delayed"},
		{"queue", "/api/queues/%2F/big.dlq"},
		{"dead-letters", "/api/dead-letters"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				benchGet(b, e, c.path)
			}
		})
	}
}

func startBench(b *testing.B) *testEnv { return startWith(b, nil) }

func benchChannel(b *testing.B, e *testEnv) *amqp.Channel {
	conn, err := amqp.Dial(e.sb.URL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	return ch
}
