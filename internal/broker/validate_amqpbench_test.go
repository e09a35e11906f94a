package broker_test

import (
	"context"
	"os"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluicemq/sluice/internal/sluicetest"
)

// BenchmarkAMQPPublishValidation publishes a 1 KiB JSON order over AMQP
// (amqp091-go, one connection, confirm mode, 256 confirms outstanding,
// transient) to a queue with and without x-schema (about 20 rules).
func BenchmarkAMQPPublishValidation(b *testing.B) {
	doc, err := os.ReadFile("../schema/testdata/order.schema.json")
	if err != nil {
		b.Fatal(err)
	}
	body, err := os.ReadFile("../schema/testdata/order.json")
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args amqp.Table
	}{{"none", nil}, {"schema", amqp.Table{"x-schema": "order"}}} {
		b.Run(tc.name, func(b *testing.B) {
			sb := sluicetest.Start(b)
			if _, err := sb.Broker.PutSchema("/", "order", doc); err != nil {
				b.Fatal(err)
			}
			conn, err := amqp.Dial(sb.URL())
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			ch, err := conn.Channel()
			if err != nil {
				b.Fatal(err)
			}
			if err := ch.Confirm(false); err != nil {
				b.Fatal(err)
			}
			if _, err := ch.QueueDeclare("bench", false, false, false, false, tc.args); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			p := amqp.Publishing{ContentType: "application/json", Body: body}
			window := make(chan *amqp.DeferredConfirmation, 256)
			drained := make(chan bool)
			go func() {
				ok := true
				for dc := range window {
					ok = dc.Wait() && ok
				}
				drained <- ok
			}()
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			for range b.N {
				dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", "bench", false, false, p)
				if err != nil {
					b.Fatal(err)
				}
				window <- dc
			}
			close(window)
			if !<-drained {
				b.Error("a publish was nacked")
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
