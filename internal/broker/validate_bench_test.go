package broker

import (
	"os"
	"sync"
	"testing"

	"github.com/sluicemq/sluice/internal/message"
)

// BenchmarkPublishValidation measures transient publishes of a 1 KiB JSON
// order into queues with and without x-schema (a schema of about 20
// rules, internal/schema/testdata): one queue, and a fanout to three
// queues sharing the schema, which still validates once per message.
func BenchmarkPublishValidation(b *testing.B) {
	doc, err := os.ReadFile("../schema/testdata/order.schema.json")
	if err != nil {
		b.Fatal(err)
	}
	body, err := os.ReadFile("../schema/testdata/order.json")
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name   string
		queues int
		args   message.Table
	}{
		{"none", 1, nil},
		{"schema", 1, message.Table{"x-schema": "order"}},
		{"none-fanout3", 3, nil},
		{"schema-fanout3", 3, message.Table{"x-schema": "order"}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			br := openBroker(b, nil)
			if _, err := br.PutSchema("/", "order", doc); err != nil {
				b.Fatal(err)
			}
			pub := newClient(b, br)
			pub.declareExchange("orders", kindFanout, nil)
			for i := range tc.queues {
				q := pub.declareQueue("", false, tc.args)
				pub.bind("orders", q, "", nil)
				_ = i
			}
			var wg sync.WaitGroup
			done := func(err error) {
				if err != nil {
					b.Error(err)
				}
				wg.Done()
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				m := &message.Message{Exchange: "orders", Body: body,
					Properties: message.Properties{Flags: message.FlagContentType, ContentType: "application/json"}}
				wg.Add(1)
				if _, err := pub.ch.Publish(m, false, done); err != nil {
					b.Fatal(err)
				}
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
