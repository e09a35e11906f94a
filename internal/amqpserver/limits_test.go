package amqpserver_test

import (
	"strings"
	"testing"
	"unicode/utf8"

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
