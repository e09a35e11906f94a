package amqpserver_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

// TestLongReplyTextReachesClient checks that a channel error whose reply
// text quotes a long name (over AMQP's 255-byte short string) still reaches
// the client as channel.close, cut on a UTF-8 boundary, and that the
// connection lives on.
func TestLongReplyTextReachesClient(t *testing.T) {
	b := sluicetest.Start(t)
	conn := b.Dial(t)
	ch := sluicetest.Channel(t, conn)
	name := strings.Repeat("é", 110) // 220 bytes
	_, err := ch.QueueDeclarePassive(name, false, false, false, false, nil)
	ae := wantAMQPError(t, err, 404)
	if len(ae.Reason) > 255 || !utf8.ValidString(ae.Reason) || !strings.HasPrefix(ae.Reason, "NOT_FOUND - no queue '") {
		t.Fatalf("reply text %q (%d bytes): want a valid UTF-8 NOT_FOUND text of at most 255 bytes", ae.Reason, len(ae.Reason))
	}
	if conn.IsClosed() {
		t.Fatal("a channel error closed the connection")
	}
	ch2 := sluicetest.Channel(t, conn)
	if _, err := ch2.QueueDeclare("", false, true, true, false, nil); err != nil {
		t.Fatalf("connection unusable after a channel error: %v", err)
	}
}

// TestUnencodableDeliveryKeepsConnection checks that a message the writer
// cannot encode for one consumer (its content header does not fit the
// consumer's negotiated frame max) does not cost that consumer its
// connection: the delivery is rejected without requeue, so it is
// dead-lettered, and the next message is delivered.
func TestUnencodableDeliveryKeepsConnection(t *testing.T) {
	b := sluicetest.Start(t)
	pub := sluicetest.Channel(t, b.Dial(t))
	if _, err := pub.QueueDeclare("poison-dlq", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	args := amqp091.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "poison-dlq"}
	if _, err := pub.QueueDeclare("poison", false, false, false, false, args); err != nil {
		t.Fatal(err)
	}
	big := amqp091.Publishing{Headers: amqp091.Table{"pad": strings.Repeat("x", 8000)}, Body: []byte("big")}
	if err := pub.Publish("", "poison", false, false, big); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish("", "poison", false, false, amqp091.Publishing{Body: []byte("small")}); err != nil {
		t.Fatal(err)
	}

	conn, err := amqp091.DialConfig(b.URL(), amqp091.Config{FrameSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch := sluicetest.Channel(t, conn)
	deliveries, err := ch.Consume("poison", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := recv(t, deliveries)
	if string(d.Body) != "small" {
		t.Fatalf("got %q, want the small message", d.Body)
	}
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	if conn.IsClosed() {
		t.Fatal("connection closed")
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got, ok, err := pub.Get("poison-dlq", true)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if string(got.Body) != "big" {
				t.Fatalf("dead-lettered %q, want the big message", got.Body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the unencodable message was not dead-lettered")
		}
	}
	// basic.get of such a message answers get-empty, the connection lives.
	if err := ch.Cancel(d.ConsumerTag, false); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish("", "poison", false, false, big); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if _, ok, err := ch.Get("poison", false); err != nil || ok {
		t.Fatalf("get = %v, %v; want get-empty", ok, err)
	}
	if conn.IsClosed() {
		t.Fatal("connection closed after basic.get")
	}
}
