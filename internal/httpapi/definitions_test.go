package httpapi_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluicemq/sluice/internal/api"
)

// TestImportRabbitMQDefinitions: a definitions file exported by
// rabbitmqadmin from RabbitMQ 3.10.8 (testdata) imports unchanged; the
// topology matches the file, the users log in with their passwords, and
// importing it again changes nothing.
func TestImportRabbitMQDefinitions(t *testing.T) {
	e := start(t)
	file, err := os.ReadFile("testdata/rabbitmq-3.10.8-definitions.json")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if st, b := e.raw(t, "POST", "/api/definitions", string(file)); st != http.StatusNoContent {
			t.Fatalf("import: %d %s", st, b)
		}
	}
	ctx := context.Background()
	q, err := e.c.Queue(ctx, "/", "orders.created")
	if err != nil {
		t.Fatal(err)
	}
	if q.Arguments["x-dead-letter-exchange"] != "orders.dlx" || q.Policy == nil || *q.Policy != "ttl-orders" ||
		q.OperatorPolicy == nil || *q.OperatorPolicy != "cap" {
		t.Errorf("orders.created: %+v", q)
	}
	if q, err := e.c.Queue(ctx, "staging", "stq"); err != nil || !q.Durable {
		t.Errorf("staging/stq: %+v %v", q, err)
	}
	st, b := e.raw(t, "GET", "/api/definitions", "")
	if st != http.StatusOK {
		t.Fatalf("export: %d %s", st, b)
	}
	var got api.Definitions
	mustJSON(t, b, &got)
	var want api.Definitions
	mustJSON(t, file, &want)
	count := func(d api.Definitions) []int {
		return []int{len(d.Queues), len(d.Exchanges), len(d.Bindings), len(d.Policies), len(d.Parameters)}
	}
	if g, w := count(got), count(want); !equalInts(g, w) {
		t.Errorf("exported counts %v, want the file's %v", g, w)
	}
	var sawE2E bool
	for _, bd := range got.Bindings {
		sawE2E = sawE2E || (bd.Source == "orders" && bd.DestinationType == "exchange" && bd.Destination == "fan" && bd.RoutingKey == "#")
	}
	if !sawE2E {
		t.Errorf("exchange-to-exchange binding missing: %+v", got.Bindings)
	}
	// The imported user logs in over AMQP with the password it had in RabbitMQ.
	conn, err := amqp.Dial(strings.Replace(e.sb.URL(), "guest:guest", "app:s3cret", 1))
	if err != nil {
		t.Fatalf("app logs in: %v", err)
	}
	_ = conn.Close()
}

// TestDefinitionsRoundTripAndErrors: Sluice's own export (with schemas)
// imports into a fresh broker, the same topology results; a bad file is
// refused with a reason and changes nothing.
func TestDefinitionsRoundTripAndErrors(t *testing.T) {
	a := start(t)
	ctx := context.Background()
	if st, b := a.raw(t, "PUT", "/api/schemas/%2F/order", `{"schema":{"type":"object"}}`); st != http.StatusCreated {
		t.Fatalf("schema: %d %s", st, b)
	}
	declare(t, a.c, "in", map[string]any{"x-schema": "order", "x-retry-backoff": "1s,5s"})
	if st, b := a.raw(t, "PUT", "/api/policies/%2F/p", `{"pattern":"^in$","definition":{"max-length":7}}`); st != http.StatusCreated {
		t.Fatalf("policy: %d %s", st, b)
	}
	_, exp := a.raw(t, "GET", "/api/definitions", "")
	b := start(t)
	if st, body := b.raw(t, "POST", "/api/definitions", string(exp)); st != http.StatusNoContent {
		t.Fatalf("import: %d %s", st, body)
	}
	_, exp2 := b.raw(t, "GET", "/api/definitions", "")
	strip := func(s []byte) string { // product_version may differ; nothing else should
		return string(s)
	}
	if strip(exp) != strip(exp2) {
		t.Errorf("round trip differs:\n%s\n%s", exp, exp2)
	}
	q, err := b.c.Queue(ctx, "/", "in")
	if err != nil || q.Policy == nil || q.Arguments["x-schema"] != "order" {
		t.Errorf("imported queue %+v %v", q, err)
	}
	_, per := a.raw(t, "GET", "/api/definitions/%2F", "")
	if strings.Contains(string(per), `"vhost"`) || strings.Contains(string(per), `"users"`) {
		t.Errorf("per-vhost export carries vhosts or users: %s", per)
	}
	for _, bad := range []string{
		`{"queues":[{"name":"x","vhost":"nope","durable":true}]}`,
		`{"bindings":[{"source":"a","vhost":"/","destination":"b","destination_type":"topic"}]}`,
		`{"users":[{"name":"u","password_hash":"x","hashing_algorithm":"rabbit_password_hashing_md5","tags":[]}]}`,
		`{"queues":[{"name":"fresh","vhost":"/","durable":true}],"parameters":[{"vhost":"/","component":"federation-upstream","name":"f","value":{}}]}`,
		`{"queues": [`,
		`{"queues":[{"name":"fresh","vhost":"/","durable":true}],"policies":[{"vhost":"/","name":"p","pattern":".*","definition":{"max-priority":3}}]}`,
		`{"queues":[{"name":"fresh","vhost":"/","durable":true},{"name":"q2","vhost":"/","durable":true,"arguments":{"x-max-length":-1}}]}`,
		`{"queues":[{"name":"fresh","vhost":"/","durable":true}],"exchanges":[{"name":"x","vhost":"/","type":"x-consistent-hash"}]}`,
	} {
		if st, body := b.raw(t, "POST", "/api/definitions", bad); st != http.StatusBadRequest {
			t.Errorf("import %s: %d %s, want 400", bad, st, body)
		}
	}
	if _, err := b.c.Queue(ctx, "/", "fresh"); api.StatusOf(err) != http.StatusNotFound {
		t.Errorf("a refused file was partly applied: %v", err)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
