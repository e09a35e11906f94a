package broker

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/store/memstore"
)

const amountSchema = `{"type":"object","required":["amount"],"properties":{"amount":{"type":"number"}}}`

func TestSchemaRegistryErrors(t *testing.T) {
	b := openBroker(t, nil)
	if _, err := b.PutSchema("/", "order", []byte(amountSchema)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		err  error
		code Code
		want string
	}{
		{"unknown vhost", second(b.PutSchema("nope", "s", []byte(amountSchema))), NotFound, "no vhost 'nope'"},
		{"empty name", second(b.PutSchema("/", "", []byte(amountSchema))), InvalidArgument, "empty"},
		{"not json", second(b.PutSchema("/", "s", []byte(`{"type":`))), InvalidArgument, "not JSON"},
		{"does not compile", second(b.PutSchema("/", "s", []byte(`{"type":"nonsense"}`))), InvalidArgument, "does not compile"},
		{"get missing", second(b.Schema("/", "missing")), NotFound, "no schema 'missing'"},
		{"delete missing", b.DeleteSchema("/", "missing"), NotFound, "no schema 'missing'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { wantCodeContains(t, tc.err, tc.code, tc.want) })
	}
	if _, err := b.Schema("/", "s"); CodeOf(err) != NotFound {
		t.Errorf("a refused schema was registered: %v", err)
	}
}

func wantCodeContains(t *testing.T, err error, code Code, want string) {
	t.Helper()
	if err == nil || CodeOf(err) != code || !strings.Contains(err.Error(), want) {
		t.Errorf("error = %v (%v), want %v containing %q", err, CodeOf(err), code, want)
	}
}

func second[T any](_ T, err error) error { return err }

func TestSchemaRegistryDurable(t *testing.T) {
	st := memstore.New()
	b1, err := Open(testConfig(), st)
	if err != nil {
		t.Fatal(err)
	}
	if created, err := b1.PutSchema("/", "order", []byte(amountSchema)); err != nil || !created {
		t.Fatalf("put: created %v, err %v", created, err)
	}
	if created, err := b1.PutSchema("/", "order", []byte(amountSchema)); err != nil || created {
		t.Fatalf("replace: created %v, err %v", created, err)
	}
	c := newClient(t, b1)
	c.declareQueue("orders", true, message.Table{"x-schema": "order"})
	if err := c.ch.DeclareExchange(ExchangeDecl{Name: "in", Type: kindDirect, Durable: true, Args: message.Table{"x-schema": "order"}}); err != nil {
		t.Fatal(err)
	}
	if err := b1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	b2 := openBroker(t, st)
	si, err := b2.Schema("/", "order")
	if err != nil {
		t.Fatalf("schema after restart: %v", err)
	}
	if string(si.Document) != amountSchema {
		t.Errorf("document = %s, want %s", si.Document, amountSchema)
	}
	if got := strings.Join(si.UsedBy, ", "); got != "queue 'orders', exchange 'in'" {
		t.Errorf("used by = %q", got)
	}
	wantCodeContains(t, b2.DeleteSchema("/", "order"), PreconditionFailed, "in use by queue 'orders', exchange 'in'")

	c2 := newClient(t, b2)
	_, err = c2.ch.Publish(&message.Message{RoutingKey: "orders", Body: []byte(`{"amount":"x"}`)}, false, nil)
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Schema != "order" || ve.Errors[0].Pointer != "/amount" {
		t.Errorf("invalid publish after restart: %v, want a validation error at /amount", err)
	}
	if !c2.publish("", "orders", `{"amount":1}`, true) {
		t.Error("valid publish not routed")
	}
	list, err := b2.Schemas("")
	if err != nil || len(list) != 1 || list[0].Name != "order" {
		t.Errorf("Schemas = %+v, %v", list, err)
	}
}

// TestValidationOncePerMessage checks that a message fanned out to queues
// sharing a schema (and an exchange with it too) is parsed and checked once.
func TestValidationOncePerMessage(t *testing.T) {
	b := openBroker(t, nil)
	if _, err := b.PutSchema("/", "order", []byte(amountSchema)); err != nil {
		t.Fatal(err)
	}
	// Another name for the same document shares the compiled schema.
	if _, err := b.PutSchema("/", "order2", []byte(amountSchema)); err != nil {
		t.Fatal(err)
	}
	if n := b.env.schemas.cache.Len(); n != 1 {
		t.Errorf("compiled schemas = %d, want 1", n)
	}
	c := checker{reg: b.env.schemas, vhost: "/", msg: &message.Message{Body: []byte(`{"amount":"x"}`)}}
	for _, name := range []string{"order", "order2", "order"} {
		if verr := c.check(name, "queue 'q'"); verr == nil || verr.Schema != name {
			t.Fatalf("check %s: %v", name, verr)
		}
	}
	if len(c.results) != 1 {
		t.Errorf("schema runs = %d, want 1", len(c.results))
	}
}
