package broker

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/store/memstore"
)

func putPolicy(t *testing.T, b *Broker, p Policy) {
	t.Helper()
	if p.VHost == "" {
		p.VHost = "/"
	}
	if _, err := b.PutPolicy(p); err != nil {
		t.Fatalf("PutPolicy %s: %v", p.Name, err)
	}
}

// Policies merge with declared arguments as RabbitMQ's classic queue
// resolves them: the smaller numeric limit, the argument for the rest;
// the operator policy's limit when it is smaller; changes apply to an
// existing queue at once, and policies survive a restart.
func TestPolicyMergeApplyAndRecover(t *testing.T) {
	st := memstore.New()
	b, err := Open(testConfig(), st)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, b)
	c.declareQueue("orders.a", true, message.Table{"x-max-length": int64(10), "x-dead-letter-exchange": "mine"})
	c.declareQueue("orders.b", true, nil)
	c.declareQueue("other", true, nil)
	putPolicy(t, b, Policy{Name: "low", Pattern: "^orders\\.", Priority: 0, Definition: map[string]any{"max-length": int64(100)}})
	putPolicy(t, b, Policy{Name: "orders", Pattern: "^orders\\.", ApplyTo: "queues", Priority: 5, Definition: map[string]any{
		"max-length": int64(5), "dead-letter-exchange": "pol", "message-ttl": int64(60000), "retry-backoff": "1s,5s"}})
	opts := func(name string) *QueueOptions { return b.vhost("/").queues[name].opts() }
	a, bq := opts("orders.a"), opts("orders.b")
	if a.MaxLength != 5 || a.DeadLetterExchange != "mine" || a.MessageTTL != 60000 || a.Policy != "orders" {
		t.Errorf("orders.a: %+v", *a)
	}
	if bq.MaxLength != 5 || bq.DeadLetterExchange != "pol" || len(bq.RetryBackoff) != 2 {
		t.Errorf("orders.b: %+v", *bq)
	}
	if o := opts("other"); o.Policy != "" || o.MaxLength != -1 {
		t.Errorf("other: %+v", *o)
	}
	putPolicy(t, b, Policy{Name: "cap", Pattern: ".*", Operator: true, Definition: map[string]any{"max-length": int64(2)}})
	if a := opts("orders.a"); a.MaxLength != 2 || a.OperatorPolicy != "cap" {
		t.Errorf("operator cap: %+v", *a)
	}
	if o := opts("other"); o.MaxLength != 2 {
		t.Errorf("operator cap on other: %+v", *o)
	}
	// A full queue is trimmed at once (drop-head).
	for i := range 4 {
		c.publish("", "other", strings.Repeat("x", i+1), true)
	}
	if q, _ := b.Queue("/", "other"); q.Ready != 2 {
		t.Errorf("other holds %d, want 2 under the operator policy", q.Ready)
	}
	if err := b.DeletePolicy("/", "cap", true); err != nil {
		t.Fatal(err)
	}
	if a := opts("orders.a"); a.MaxLength != 5 || a.OperatorPolicy != "" {
		t.Errorf("after delete: %+v", *a)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	b2 := openBroker(t, st)
	if a := b2.vhost("/").queues["orders.a"].opts(); a.MaxLength != 5 || a.Policy != "orders" {
		t.Errorf("recovered orders.a: %+v", *a)
	}
	if ps, _ := b2.Policies("/", false); len(ps) != 2 {
		t.Errorf("recovered policies %+v", ps)
	}
}

// Validation as RabbitMQ 3.10's: unknown settings (max-priority among
// them), operator policies limited to numeric limits, wrong values.
func TestPolicyValidation(t *testing.T) {
	b := openBroker(t, nil)
	for _, tc := range []struct {
		p    Policy
		want string
	}{
		{Policy{Name: "p", Pattern: "x", Definition: map[string]any{"max-priority": int64(5)}}, "max-priority are not recognised policy settings"},
		{Policy{Name: "p", Pattern: "x", Operator: true, Definition: map[string]any{"dead-letter-exchange": "d"}}, "not recognised"},
		{Policy{Name: "p", Pattern: "x", Definition: map[string]any{"message-ttl": "5"}}, "message-ttl"},
		{Policy{Name: "p", Pattern: "x", Definition: map[string]any{"overflow": "nope"}}, "invalid_overflow"},
		{Policy{Name: "p", Pattern: "x", ApplyTo: "bogus", Definition: map[string]any{"expires": int64(5)}}, "apply-to 'bogus'"},
		{Policy{Name: "p", Pattern: "(", Definition: map[string]any{"expires": int64(5)}}, "not a regular expression"},
		{Policy{Name: "p", Pattern: "x", Definition: map[string]any{}}, "no policy provided"},
		{Policy{Name: "", Pattern: "x", Definition: map[string]any{"expires": int64(5)}}, "name is empty"},
	} {
		tc.p.VHost = "/"
		_, err := b.PutPolicy(tc.p)
		wantCode(t, err, InvalidArgument, "")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.p, err, tc.want)
		}
	}
	if _, err := b.PutPolicy(Policy{VHost: "/", Name: "p", Pattern: "x", Definition: map[string]any{"schema": "missing"}}); err == nil ||
		!strings.Contains(err.Error(), "no schema 'missing'") {
		t.Errorf("schema that does not exist: %v", err)
	}
	if _, err := b.PutPolicy(Policy{VHost: "nope", Name: "p", Pattern: "x", Definition: map[string]any{"expires": int64(5)}}); CodeOf(err) != NotFound {
		t.Errorf("unknown vhost: %v", err)
	}
}

// Policy changes swap a queue's options while publishes, deliveries and
// dead lettering read them (run with -race).
func TestPolicyChangeDuringTraffic(t *testing.T) {
	b := openBroker(t, nil)
	c := newClient(t, b)
	c.declareExchange("dlx", "fanout", nil)
	c.declareQueue("dead", false, nil)
	c.bind("dlx", "dead", "", nil)
	c.declareQueue("busy", false, nil)
	c.consume("busy", true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			c.publish("", "busy", fmt.Sprint(i), false)
		}
	}()
	for i := range 50 {
		putPolicy(t, b, Policy{Name: "p", Pattern: "^busy$", Definition: map[string]any{
			"max-length": int64(10 + i), "dead-letter-exchange": "dlx", "message-ttl": int64(100000)}})
	}
	<-done
	if err := b.DeletePolicy("/", "p", false); err != nil {
		t.Fatal(err)
	}
	if o := b.vhost("/").queues["busy"].opts(); o.MaxLength != -1 || o.HasDeadLetter {
		t.Errorf("after delete: %+v", *o)
	}
}

// A policy that applies to exchanges gives them an alternate exchange
// (the argument wins) and a schema, at once and after a restart.
func TestPolicyOnExchanges(t *testing.T) {
	st := memstore.New()
	b, err := Open(testConfig(), st)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, b)
	if err := c.ch.DeclareExchange(ExchangeDecl{Name: "in", Type: "direct", Durable: true}); err != nil {
		t.Fatal(err)
	}
	c.declareExchange("own", "direct", message.Table{"alternate-exchange": "mine"})
	c.declareExchange("ae", "fanout", nil)
	c.declareQueue("unrouted", true, nil)
	c.bind("ae", "unrouted", "", nil)
	putPolicy(t, b, Policy{Name: "ae", Pattern: "^(in|own)$", ApplyTo: "exchanges",
		Definition: map[string]any{"alternate-exchange": "ae", "max-length": int64(5)}})
	c.publish("in", "nobody", "lost?", true)
	if q, _ := b.Queue("/", "unrouted"); q.Ready != 1 {
		t.Errorf("unrouted holds %d, want the message through the policy's alternate exchange", q.Ready)
	}
	if x, _ := b.Exchange("/", "in"); x.Policy != "ae" {
		t.Errorf("exchange policy %q", x.Policy)
	}
	if a := b.vhost("/").exchanges["own"].alternate; a != "mine" {
		t.Errorf("own's alternate %q, want its argument", a)
	}
	if o := b.vhost("/").queues["unrouted"].opts(); o.Policy != "" {
		t.Errorf("a policy for exchanges applied to a queue: %+v", *o)
	}
	if _, err := b.PutPolicy(Policy{VHost: "/", Name: "bad", Pattern: "x", Definition: map[string]any{"alternate-exchange": int64(1)}}); CodeOf(err) != InvalidArgument {
		t.Errorf("alternate-exchange 1: %v", err)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	b2 := openBroker(t, st)
	if a := b2.vhost("/").exchanges["in"].alternate; a != "ae" {
		t.Errorf("recovered alternate %q", a)
	}
}

// A deleted vhost takes its policies with it: recreated, it has none.
func TestPolicyGoesWithItsVHost(t *testing.T) {
	b := openBroker(t, nil)
	if _, err := b.PutVHost("v"); err != nil {
		t.Fatal(err)
	}
	putPolicy(t, b, Policy{VHost: "v", Name: "p", Pattern: ".*", Definition: map[string]any{"expires": int64(1000)}})
	if err := b.DeleteVHost("v"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutVHost("v"); err != nil {
		t.Fatal(err)
	}
	if ps, err := b.Policies("v", false); err != nil || len(ps) != 0 {
		t.Errorf("policies of the recreated vhost: %+v %v", ps, err)
	}
}
