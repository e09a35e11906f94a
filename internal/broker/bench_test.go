package broker

import (
	"sync"
	"testing"
)

// ackOutlet acks every delivery from its own goroutine, as a client would.
type ackOutlet struct {
	tags chan uint64
}

func (o *ackOutlet) Deliver(d *Delivery)      { o.tags <- d.DeliveryTag }
func (o *ackOutlet) ConsumerCancelled(string) {}

// BenchmarkPublishDeliverAck measures one message's way through the
// broker: publish (transient and persistent), deliver to a consumer with
// prefetch, ack.
func BenchmarkPublishDeliverAck(b *testing.B) {
	for _, persistent := range []bool{false, true} {
		name := "transient"
		if persistent {
			name = "persistent"
		}
		b.Run(name, func(b *testing.B) {
			br := openBroker(b, nil)
			pub := newClient(b, br)
			pub.declareQueue("bench", true, nil)
			conn, err := br.Connect(ConnInfo{User: "guest", VHost: "/"})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(conn.Close)
			out := &ackOutlet{tags: make(chan uint64, 1024)}
			ch := conn.Channel(1, out)
			if err := ch.Qos(0, 500, false); err != nil {
				b.Fatal(err)
			}
			if _, err := ch.Consume(ConsumeRequest{Queue: "bench"}); err != nil {
				b.Fatal(err)
			}
			var wg sync.WaitGroup
			wg.Go(func() {
				for range b.N {
					tag := <-out.tags
					if err := ch.Ack(tag, false); err != nil {
						b.Error(err)
						return
					}
				}
			})
			msg := newMsg("", "bench", "0123456789012345678901234567890123456789", persistent)
			b.SetBytes(int64(len(msg.Body)))
			b.ResetTimer()
			for range b.N {
				m := *msg
				if _, err := pub.ch.Publish(&m, false, nil); err != nil {
					b.Fatal(err)
				}
			}
			wg.Wait()
		})
	}
}
