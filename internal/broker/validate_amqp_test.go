package broker_test

// Validation at the door, over AMQP with amqp091-go against a whole broker.

import (
	"context"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluicemq/sluice/internal/amqpserver"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

const orderSchema = `{
  "type": "object",
  "required": ["id", "amount"],
  "properties": {"id": {"type": "string"}, "amount": {"type": "number", "minimum": 0}}
}`

const (
	validOrder   = `{"id":"o-1","amount":12.5}`
	invalidOrder = `{"id":"o-1","amount":"twelve"}`
)

func startWithSchema(t *testing.T, opts ...sluicetest.Option) (*sluicetest.Broker, *amqp.Connection) {
	t.Helper()
	sb := sluicetest.Start(t, opts...)
	if _, err := sb.Broker.PutSchema("/", "order", []byte(orderSchema)); err != nil {
		t.Fatalf("put schema: %v", err)
	}
	conn, err := amqp.Dial(sb.URL())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return sb, conn
}

func openChannel(t *testing.T, conn *amqp.Connection, confirm bool) *amqp.Channel {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	if confirm {
		if err := ch.Confirm(false); err != nil {
			t.Fatalf("confirm.select: %v", err)
		}
	}
	return ch
}

func declare(t *testing.T, ch *amqp.Channel, name string, args amqp.Table) {
	t.Helper()
	if _, err := ch.QueueDeclare(name, true, false, false, false, args); err != nil {
		t.Fatalf("declare %s: %v", name, err)
	}
}

// publishConfirm publishes and returns whether the broker acked.
func publishConfirm(t *testing.T, ch *amqp.Channel, exchange, key string, p amqp.Publishing) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false, p)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	ack, err := dc.WaitContext(ctx)
	if err != nil {
		t.Fatalf("wait for confirm: %v", err)
	}
	return ack
}

// publishExpectClose publishes without confirms and returns the channel
// exception that follows.
func publishExpectClose(t *testing.T, ch *amqp.Channel, exchange, key string, p amqp.Publishing) *amqp.Error {
	t.Helper()
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	if err := ch.PublishWithContext(context.Background(), exchange, key, false, false, p); err != nil {
		t.Fatalf("publish: %v", err)
	}
	select {
	case e := <-closed:
		if e == nil {
			t.Fatal("channel closed without an error")
		}
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after an invalid publish")
	}
	return nil
}

func depth(t *testing.T, conn *amqp.Connection, queue string) int {
	t.Helper()
	ch := openChannel(t, conn, false)
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("passive declare %s: %v", queue, err)
	}
	return q.Messages
}

func jsonMsg(body string) amqp.Publishing {
	return amqp.Publishing{ContentType: "application/json", Body: []byte(body)}
}

func TestValidationRejectWithConfirms(t *testing.T) {
	_, conn := startWithSchema(t)
	ch := openChannel(t, conn, true)
	if err := ch.ExchangeDeclare("orders", "fanout", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	declare(t, ch, "checked", amqp.Table{"x-schema": "order"})
	declare(t, ch, "plain", nil)
	for _, q := range []string{"checked", "plain"} {
		if err := ch.QueueBind(q, "", "orders", false, nil); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		msg  amqp.Publishing
		ack  bool
	}{
		{"valid json", jsonMsg(validOrder), true},
		{"valid, no content type", amqp.Publishing{Body: []byte(validOrder)}, true},
		{"valid, charset and +json", amqp.Publishing{ContentType: "application/vnd.order+json; charset=utf-8", Body: []byte(validOrder)}, true},
		{"wrong type", jsonMsg(invalidOrder), false},
		{"not json at all", jsonMsg("twelve euros"), false},
		{"not a json content type", amqp.Publishing{ContentType: "text/plain", Body: []byte(validOrder)}, false},
		{"compressed", amqp.Publishing{ContentType: "application/json", ContentEncoding: "gzip", Body: []byte(validOrder)}, false},
	}
	want := 0
	for _, tc := range tests {
		if got := publishConfirm(t, ch, "orders", "", tc.msg); got != tc.ack {
			t.Errorf("%s: ack = %v, want %v", tc.name, got, tc.ack)
		}
		if tc.ack {
			want++
		}
	}
	// Nothing of a refused message is stored anywhere, not even in the
	// queue without a schema.
	for _, q := range []string{"checked", "plain"} {
		if got := depth(t, conn, q); got != want {
			t.Errorf("queue %s holds %d messages, want %d", q, got, want)
		}
	}
	// The channel is still usable after nacks.
	if !publishConfirm(t, ch, "orders", "", jsonMsg(validOrder)) {
		t.Error("valid publish after nacks was not acked")
	}
}

func TestValidationRejectWithoutConfirmsClosesChannel(t *testing.T) {
	_, conn := startWithSchema(t)
	ch := openChannel(t, conn, false)
	declare(t, ch, "checked", amqp.Table{"x-schema": "order"})
	e := publishExpectClose(t, ch, "", "checked", jsonMsg(invalidOrder))
	if e.Code != amqp.PreconditionFailed {
		t.Errorf("code = %d, want 406", e.Code)
	}
	const want = "PRECONDITION_FAILED - message does not match schema 'order': /amount: "
	if !strings.HasPrefix(e.Reason, want) {
		t.Errorf("reply text = %q, want it to start with %q", e.Reason, want)
	}
	if got := depth(t, conn, "checked"); got != 0 {
		t.Errorf("queue holds %d messages, want 0", got)
	}
}

func TestValidationExchangeSchema(t *testing.T) {
	_, conn := startWithSchema(t)
	ch := openChannel(t, conn, true)
	if err := ch.ExchangeDeclare("in", "direct", true, false, false, false, amqp.Table{"x-schema": "order"}); err != nil {
		t.Fatal(err)
	}
	declare(t, ch, "q", nil)
	if err := ch.QueueBind("q", "k", "in", false, nil); err != nil {
		t.Fatal(err)
	}
	if !publishConfirm(t, ch, "in", "k", jsonMsg(validOrder)) {
		t.Error("valid publish nacked")
	}
	if publishConfirm(t, ch, "in", "k", jsonMsg(invalidOrder)) {
		t.Error("invalid publish acked")
	}
	// Checked even when nothing is bound for the key.
	if publishConfirm(t, ch, "in", "unbound", jsonMsg(invalidOrder)) {
		t.Error("invalid unroutable publish acked")
	}
	if got := depth(t, conn, "q"); got != 1 {
		t.Errorf("queue holds %d messages, want 1", got)
	}
}

func TestValidationDeadLetter(t *testing.T) {
	_, conn := startWithSchema(t)
	ch := openChannel(t, conn, true)
	if err := ch.ExchangeDeclare("dlx", "fanout", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	declare(t, ch, "invalid-orders", nil)
	if err := ch.QueueBind("invalid-orders", "", "dlx", false, nil); err != nil {
		t.Fatal(err)
	}
	declare(t, ch, "orders", amqp.Table{"x-schema": "order", "x-validation-failure": "dead-letter",
		"x-dead-letter-exchange": "dlx"})
	if !publishConfirm(t, ch, "", "orders", amqp.Publishing{ContentType: "application/json",
		Body: []byte(invalidOrder), Expiration: "60000"}) {
		t.Fatal("dead-lettered publish was not acked")
	}
	if !publishConfirm(t, ch, "", "orders", jsonMsg(validOrder)) {
		t.Fatal("valid publish was not acked")
	}
	if got := depth(t, conn, "orders"); got != 1 {
		t.Errorf("orders holds %d messages, want 1 (the valid one)", got)
	}
	d, ok, err := ch.Get("invalid-orders", true)
	if err != nil || !ok {
		t.Fatalf("get dead letter: ok %v, err %v", ok, err)
	}
	if string(d.Body) != invalidOrder {
		t.Errorf("dead letter body = %s", d.Body)
	}
	deaths, _ := d.Headers["x-death"].([]any)
	if len(deaths) != 1 {
		t.Fatalf("x-death = %v, want one entry", d.Headers["x-death"])
	}
	death := deaths[0].(amqp.Table)
	if death["reason"] != "invalid" || death["queue"] != "orders" || death["original-expiration"] != "60000" {
		t.Errorf("x-death entry = %v", death)
	}
	if d.Expiration != "" {
		t.Errorf("dead letter keeps expiration %q", d.Expiration)
	}
	verrs, _ := d.Headers["x-validation-error"].([]any)
	if len(verrs) != 1 {
		t.Fatalf("x-validation-error = %v, want one error", d.Headers["x-validation-error"])
	}
	ve := verrs[0].(amqp.Table)
	if ve["schema"] != "order" || ve["pointer"] != "/amount" || ve["message"] == "" {
		t.Errorf("x-validation-error[0] = %v", ve)
	}
}

func TestValidationDeclareErrors(t *testing.T) {
	_, conn := startWithSchema(t)
	tests := []struct {
		name     string
		exchange bool
		args     amqp.Table
		want     string
	}{
		{"unknown schema", false, amqp.Table{"x-schema": "nope"}, "no schema 'nope'"},
		{"schema not a string", false, amqp.Table{"x-schema": int32(5)}, "x-schema"},
		{"bad failure mode", false, amqp.Table{"x-schema": "order", "x-validation-failure": "drop"}, "x-validation-failure"},
		{"dead-letter without dlx", false, amqp.Table{"x-schema": "order", "x-validation-failure": "dead-letter"}, "x-dead-letter-exchange"},
		{"max size zero", false, amqp.Table{"x-max-message-size": int32(0)}, "x-max-message-size"},
		{"max size a string", false, amqp.Table{"x-max-message-size": "1k"}, "x-max-message-size"},
		{"exchange: unknown schema", true, amqp.Table{"x-schema": "nope"}, "no schema 'nope'"},
		{"exchange: dead-letter", true, amqp.Table{"x-schema": "order", "x-validation-failure": "dead-letter"}, "x-validation-failure"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ch := openChannel(t, conn, false)
			var err error
			if tc.exchange {
				err = ch.ExchangeDeclare("x-"+strings.ReplaceAll(tc.name, " ", "-"), "direct", false, false, false, false, tc.args)
			} else {
				_, err = ch.QueueDeclare("", false, true, true, false, tc.args)
			}
			e, ok := err.(*amqp.Error)
			if !ok || e.Code != amqp.PreconditionFailed || !strings.Contains(e.Reason, tc.want) {
				t.Errorf("declare error = %v, want 406 mentioning %q", err, tc.want)
			}
		})
	}
	// A redeclaration must repeat x-schema.
	ch := openChannel(t, conn, false)
	declare(t, ch, "eq", amqp.Table{"x-schema": "order"})
	_, err := ch.QueueDeclare("eq", true, false, false, false, nil)
	if e, ok := err.(*amqp.Error); !ok || e.Code != amqp.PreconditionFailed || !strings.Contains(e.Reason, "x-schema") {
		t.Errorf("inequivalent redeclare: %v, want 406 naming x-schema", err)
	}
}

func TestQueueMaxMessageSize(t *testing.T) {
	_, conn := startWithSchema(t)
	ch := openChannel(t, conn, true)
	declare(t, ch, "small", amqp.Table{"x-max-message-size": int32(16)})
	if !publishConfirm(t, ch, "", "small", amqp.Publishing{Body: make([]byte, 16)}) {
		t.Error("publish at the limit nacked")
	}
	if publishConfirm(t, ch, "", "small", amqp.Publishing{Body: make([]byte, 17)}) {
		t.Error("oversize publish acked")
	}
	if got := depth(t, conn, "small"); got != 1 {
		t.Errorf("queue holds %d, want 1", got)
	}
	plain := openChannel(t, conn, false)
	e := publishExpectClose(t, plain, "", "small", amqp.Publishing{Body: make([]byte, 20)})
	if e.Code != amqp.PreconditionFailed || !strings.Contains(e.Reason, "message size 20 is larger than max size 16") {
		t.Errorf("close = %d %q, want 406 with size and limit", e.Code, e.Reason)
	}
}

func TestBrokerMaxMessageSize(t *testing.T) {
	_, conn := startWithSchema(t, sluicetest.WithServerConfig(func(c *amqpserver.Config) { c.MaxMessageSize = 1000 }))
	ch := openChannel(t, conn, true)
	declare(t, ch, "q", nil)
	// Several frames' worth of body is skipped, then nacked; the channel
	// stays open.
	if publishConfirm(t, ch, "", "q", amqp.Publishing{Body: make([]byte, 300_000)}) {
		t.Error("oversize publish acked")
	}
	if !publishConfirm(t, ch, "", "q", amqp.Publishing{Body: make([]byte, 1000)}) {
		t.Error("publish at the limit after an oversize one nacked")
	}
	if got := depth(t, conn, "q"); got != 1 {
		t.Errorf("queue holds %d, want 1", got)
	}
	plain := openChannel(t, conn, false)
	e := publishExpectClose(t, plain, "", "q", amqp.Publishing{Body: make([]byte, 1001)})
	if e.Code != amqp.PreconditionFailed || !strings.Contains(e.Reason, "message size 1001 is larger than configured max size 1000") {
		t.Errorf("close = %d %q, want 406 with size and limit", e.Code, e.Reason)
	}
}

func TestValidationDelayedPublish(t *testing.T) {
	_, conn := startWithSchema(t)
	ch := openChannel(t, conn, true)
	if err := ch.ExchangeDeclare("dlx", "fanout", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	// Even in dead-letter mode a delayed message is refused at once: it
	// is checked when published, not when due.
	declare(t, ch, "later", amqp.Table{"x-schema": "order", "x-validation-failure": "dead-letter", "x-dead-letter-exchange": "dlx"})
	delayed := func(body string) amqp.Publishing {
		return amqp.Publishing{ContentType: "application/json", Body: []byte(body), Headers: amqp.Table{"x-delay": int32(60000)}}
	}
	if publishConfirm(t, ch, "", "later", delayed(invalidOrder)) {
		t.Error("invalid delayed publish acked")
	}
	if !publishConfirm(t, ch, "", "later", delayed(validOrder)) {
		t.Error("valid delayed publish nacked")
	}
}

func TestValidationDeadLetterBesideOtherQueues(t *testing.T) {
	_, conn := startWithSchema(t)
	ch := openChannel(t, conn, true)
	for _, x := range []string{"dlx", "mix"} {
		if err := ch.ExchangeDeclare(x, "fanout", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	declare(t, ch, "dead", nil)
	declare(t, ch, "checked", amqp.Table{"x-schema": "order", "x-validation-failure": "dead-letter",
		"x-dead-letter-exchange": "dlx"})
	declare(t, ch, "plain", nil)
	for _, b := range [][2]string{{"dead", "dlx"}, {"checked", "mix"}, {"plain", "mix"}} {
		if err := ch.QueueBind(b[0], "", b[1], false, nil); err != nil {
			t.Fatal(err)
		}
	}
	if !publishConfirm(t, ch, "mix", "", jsonMsg(invalidOrder)) {
		t.Fatal("publish with one copy dead-lettered was not acked")
	}
	for q, want := range map[string]int{"dead": 1, "checked": 0, "plain": 1} {
		if got := depth(t, conn, q); got != want {
			t.Errorf("queue %s holds %d, want %d", q, got, want)
		}
	}
	// A bad expiration refuses the whole publish before any dead letter
	// is stored.
	plain := openChannel(t, conn, false)
	e := publishExpectClose(t, plain, "mix", "", amqp.Publishing{Body: []byte(invalidOrder), Expiration: "soon"})
	if e.Code != amqp.PreconditionFailed || !strings.Contains(e.Reason, "expiration") {
		t.Errorf("close = %d %q, want 406 about the expiration", e.Code, e.Reason)
	}
	if got := depth(t, conn, "dead"); got != 1 {
		t.Errorf("dead holds %d after a refused publish, want 1", got)
	}
}
