package dlq_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/broker"
	"github.com/sluicemq/sluice/internal/dlq"
	"github.com/sluicemq/sluice/internal/message"
)

// refuser may write everywhere but to one queue.
type refuser struct{ deny string }

func (refuser) Name() string { return "ops" }
func (r refuser) CheckWrite(_, kind, name string) error {
	if kind == "queue" && name == r.deny {
		return &broker.Error{Code: broker.AccessRefused, Reason: "no write on " + name}
	}
	return nil
}

// publishDead publishes body through exchange with key, as a dead letter
// of queue died ("" for a message without x-death).
func publishDead(t *testing.T, ch *broker.Channel, exchange, key, body, died string) {
	t.Helper()
	m := &message.Message{Exchange: exchange, RoutingKey: key, Body: []byte(body)}
	if died != "" {
		m.Properties.Flags |= message.FlagHeaders
		m.Properties.Headers = message.Table{"x-death": []any{message.Table{"count": int64(1), "reason": "rejected",
			"queue": died, "exchange": "", "routing-keys": []any{died}, "time": time.Unix(1700000000, 0).UTC()}}}
	}
	done := make(chan error, 1)
	if _, err := ch.Publish(m, false, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// wantMoved checks that a redrive result says moved to to.
func wantMoved(t *testing.T, r dlq.Result, to string) {
	t.Helper()
	if r.Err != nil || r.To != to {
		t.Errorf("message %d: %+v, want moved to %s", r.ID, r, to)
	}
}

// wantRefused checks that a redrive result is refused with code and a
// reason containing reason.
func wantRefused(t *testing.T, r dlq.Result, code broker.Code, reason string) {
	t.Helper()
	if r.Err == nil || broker.CodeOf(r.Err) != code || !strings.Contains(r.Err.Error(), reason) {
		t.Errorf("message %d: %+v, want %s %q", r.ID, r, code, reason)
	}
}

// TestRedrivePlanning: where each message goes and what refuses it. Back
// to the queue it died in when there is one, it exists and the user may
// write there; through an explicit exchange by its routing key; a dry run
// reports and moves nothing; every refused message stays.
func TestRedrivePlanning(t *testing.T) {
	b := openBroker(t, nil)
	defer b.Close(t.Context())
	fill(t, b, 0)
	w := openWorkflow(t, b)
	defer w.Close(t.Context())
	conn, ch, err := b.AdminSession("/", "guest")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{"secret", "retry"} {
		if _, err := ch.DeclareQueue(broker.QueueDecl{Name: q, Durable: true}); err != nil {
			t.Fatal(err)
		}
	}
	for _, x := range []string{"in", "x"} {
		if err := ch.DeclareExchange(broker.ExchangeDecl{Name: x, Type: "direct", Durable: true}); err != nil {
			t.Fatal(err)
		}
	}
	for _, bnd := range []broker.Binding{{Source: "in", Destination: "dlq", Key: "k"}, {Source: "in", Destination: "dlq", Key: "nokey"},
		{Source: "x", Destination: "retry", Key: "k"}} {
		if err := ch.BindQueue(bnd); err != nil {
			t.Fatal(err)
		}
	}
	publishDead(t, ch, "", "dlq", "plain", "")
	publishDead(t, ch, "", "dlq", "orphan", "gone")
	publishDead(t, ch, "", "dlq", "back", "orders")
	publishDead(t, ch, "", "dlq", "hidden", "secret")
	publishDead(t, ch, "in", "k", "routed", "orders")
	publishDead(t, ch, "in", "nokey", "stuck", "orders")
	ids, err := w.MatchingIDs("/", "dlq", dlq.Filter{})
	if err != nil || len(ids) != 6 {
		t.Fatalf("ids %v %v", ids, err)
	}
	u := refuser{deny: "secret"}
	check := func(dryRun bool) {
		t.Helper()
		res, err := w.RedriveNow(u, "/", "dlq", ids[:4], dlq.Target{}, dryRun)
		if err != nil || len(res) != 4 {
			t.Fatalf("redrive (dry run %v): %+v %v", dryRun, res, err)
		}
		wantRefused(t, res[0], broker.PreconditionFailed, "no x-death header")
		wantRefused(t, res[1], broker.NotFound, "died in queue 'gone', which no longer exists")
		wantMoved(t, res[2], "queue 'orders'")
		wantRefused(t, res[3], broker.AccessRefused, "no write on secret")
	}
	check(true)
	if q, _ := b.Queue("/", "dlq"); q.Ready != 6 {
		t.Fatalf("a dry run moved messages: dlq holds %d", q.Ready)
	}
	check(false)
	for q, want := range map[string]int{"dlq": 5, "orders": 1, "secret": 0} {
		if info, _ := b.Queue("/", q); info.Ready != want {
			t.Errorf("%s holds %d, want %d", q, info.Ready, want)
		}
	}

	res, err := w.RedriveNow(u, "/", "dlq", ids[4:], dlq.Target{Exchange: "x"}, false)
	if err != nil {
		t.Fatal(err)
	}
	wantMoved(t, res[0], "exchange 'x'")
	wantRefused(t, res[1], broker.NotFound, "unroutable from exchange 'x' with routing key 'nokey'")
	d, err := ch.Get("retry", true)
	if err != nil || d == nil || string(d.Body) != "routed" || d.Exchange != "x" || d.RoutingKey != "k" {
		t.Fatalf("the message routed through x: %+v %v", d, err)
	}

	if _, err := w.RedriveNow(u, "/", "dlq", ids[:1], dlq.Target{Queue: "nope"}, false); broker.CodeOf(err) != broker.NotFound {
		t.Fatalf("redrive to a missing target: %v", err)
	}
	// An unacked message is not moved; once requeued, it is.
	got, err := ch.Get("dlq", false)
	if err != nil || got == nil || string(got.Body) != "plain" {
		t.Fatalf("get: %+v %v", got, err)
	}
	res, err = w.RedriveNow(u, "/", "dlq", ids[:1], dlq.Target{Queue: "retry"}, false)
	if err != nil {
		t.Fatal(err)
	}
	wantRefused(t, res[0], broker.PreconditionFailed, "unacked")
	if err := ch.Nack(got.DeliveryTag, false, true); err != nil {
		t.Fatal(err)
	}
	res, err = w.RedriveNow(u, "/", "dlq", ids[:1], dlq.Target{Queue: "retry"}, false)
	if err != nil {
		t.Fatal(err)
	}
	wantMoved(t, res[0], "queue 'retry'")
}

// TestRedriveAfterEditRefused: an edit that completes after a redrive read
// a message and before it moved it (forced by running it there) is not
// lost: the message is refused with 409, stays in the dead letter queue as
// edited, and the next redrive moves the edited message.
func TestRedriveAfterEditRefused(t *testing.T) {
	b := openBroker(t, nil)
	defer b.Close(t.Context())
	fill(t, b, 2)
	w := openWorkflow(t, b)
	defer w.Close(t.Context())
	ids, err := w.MatchingIDs("/", "dlq", dlq.Filter{})
	if err != nil || len(ids) != 2 {
		t.Fatalf("ids %v %v", ids, err)
	}
	sm, err := b.Message("/", "dlq", ids[0])
	if err != nil {
		t.Fatal(err)
	}
	edited := *sm.Message
	edited.Body = []byte("edited")
	w.SetPlanned(func() {
		if err := b.ReplaceMessage("/", "dlq", ids[0], &edited, sm.Version); err != nil {
			t.Error(err)
		}
	})
	res, err := w.RedriveNow(operator{}, "/", "dlq", ids, dlq.Target{}, false)
	if err != nil {
		t.Fatal(err)
	}
	wantRefused(t, res[0], broker.PreconditionFailed, "was edited after it was read; read it again")
	if s := dlq.StatusOf(res[0].Err); s != 409 {
		t.Errorf("reported with status %d, want 409", s)
	}
	wantMoved(t, res[1], "queue 'orders'")
	if got := browseStates(t, w, "dlq"); len(got) != 1 || got[0] != "edited:ready:0" {
		t.Fatalf("dlq after the refused redrive: %v", got)
	}

	w.SetPlanned(nil)
	res, err = w.RedriveNow(operator{}, "/", "dlq", ids[:1], dlq.Target{}, false)
	if err != nil {
		t.Fatal(err)
	}
	wantMoved(t, res[0], "queue 'orders'")
	got := browseStates(t, w, "orders")
	if len(got) != 2 || got[1] != "edited:ready:0" {
		t.Fatalf("orders: %v", got)
	}
}

// TestEditAfterEditRefused: a partial edit is made from a read of the
// message; another edit completing in between (forced by making it from
// the first edit's function) is not undone: the first edit is refused
// with 409 and the message keeps the other edit.
func TestEditAfterEditRefused(t *testing.T) {
	b := openBroker(t, nil)
	defer b.Close(t.Context())
	fill(t, b, 1)
	w := openWorkflow(t, b)
	defer w.Close(t.Context())
	ids, err := w.MatchingIDs("/", "dlq", dlq.Filter{})
	if err != nil || len(ids) != 1 {
		t.Fatalf("ids %v %v", ids, err)
	}
	with := func(body string) func(*message.Message) (*message.Message, []string, error) {
		return func(cur *message.Message) (*message.Message, []string, error) {
			m := *cur
			m.Body = []byte(body)
			return &m, []string{"body"}, nil
		}
	}
	_, err = w.Replace(operator{}, "/", "dlq", ids[0], func(cur *message.Message) (*message.Message, []string, error) {
		if _, err := w.Replace(operator{}, "/", "dlq", ids[0], with("second")); err != nil {
			t.Fatalf("the edit in between: %v", err)
		}
		return with("first")(cur)
	})
	if broker.CodeOf(err) != broker.PreconditionFailed || dlq.StatusOf(err) != 409 ||
		!strings.Contains(err.Error(), "was edited after it was read") {
		t.Fatalf("an edit made from a read older than another edit: %v", err)
	}
	if got := browseStates(t, w, "dlq"); len(got) != 1 || got[0] != "second:ready:0" {
		t.Fatalf("dlq after the refused edit: %v", got)
	}
}
