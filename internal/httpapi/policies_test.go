package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestPolicyChangesDeadLetteringAtOnce: a policy put on an existing queue
// gives it a dead-letter exchange at once (a reject through amqp091-go
// lands in the dead-letter queue), the queue shows policy and
// effective_policy_definition, and deleting the policy takes it away.
func TestPolicyChangesDeadLetteringAtOnce(t *testing.T) {
	e := start(t)
	_, ch := e.amqpChannel(t)
	if _, err := ch.QueueDeclare("jobs", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare("jobs.dlx", "fanout", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("jobs.dead", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind("jobs.dead", "", "jobs.dlx", false, nil); err != nil {
		t.Fatal(err)
	}
	reject := func(body string) {
		t.Helper()
		publishConfirmed(t, ch, "", "jobs", amqp.Publishing{Body: []byte(body)})
		d, ok, err := ch.Get("jobs", false)
		if err != nil || !ok {
			t.Fatalf("get: %v %v", ok, err)
		}
		if err := d.Reject(false); err != nil {
			t.Fatal(err)
		}
		// basic.reject has no reply: a synchronous method behind it on the
		// same channel makes sure the broker handled it before the test
		// changes the policy.
		if _, err := ch.QueueDeclarePassive("jobs", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	reject("before")
	if st, b := e.raw(t, "PUT", "/api/policies/%2F/jobs-dlx",
		`{"pattern":"^jobs$","apply-to":"queues","priority":1,"definition":{"dead-letter-exchange":"jobs.dlx","max-length":100}}`); st != http.StatusCreated {
		t.Fatalf("put policy: %d %s", st, b)
	}
	reject("after")
	deadline := time.Now().Add(5 * time.Second)
	var got *amqp.Delivery
	for got == nil && time.Now().Before(deadline) {
		d, ok, err := ch.Get("jobs.dead", true)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			got = &d
		}
	}
	if got == nil || string(got.Body) != "after" {
		t.Fatalf("dead letter %v, want the message rejected after the policy", got)
	}
	if deaths, _ := got.Headers["x-death"].([]any); len(deaths) != 1 {
		t.Errorf("x-death %v", got.Headers["x-death"])
	}
	if d, ok, _ := ch.Get("jobs.dead", true); ok {
		t.Errorf("the message rejected before the policy was dead-lettered too: %s", d.Body)
	}
	st, b := e.raw(t, "GET", "/api/queues/%2F/jobs", "")
	var q map[string]any
	mustJSON(t, b, &q)
	def, _ := q["effective_policy_definition"].(map[string]any)
	if st != http.StatusOK || q["policy"] != "jobs-dlx" || q["operator_policy"] != nil || def["dead-letter-exchange"] != "jobs.dlx" {
		t.Errorf("queue: %d %s", st, b)
	}
	st, b = e.raw(t, "GET", "/api/policies/%2F", "")
	if st != http.StatusOK || !strings.Contains(string(b), `"apply-to":"queues"`) || !strings.Contains(string(b), `"priority":1`) {
		t.Errorf("list: %d %s", st, b)
	}
	audit, _ := e.c.Audit(context.Background())
	if len(audit) == 0 || audit[len(audit)-1].Action != "policy.set" {
		t.Errorf("audit %+v", audit)
	}
	if st, b := e.raw(t, "DELETE", "/api/policies/%2F/jobs-dlx", ""); st != http.StatusNoContent {
		t.Fatalf("delete: %d %s", st, b)
	}
	reject("gone")
	if d, ok, _ := ch.Get("jobs.dead", true); ok {
		t.Errorf("dead-lettered after the policy was deleted: %s", d.Body)
	}
	for _, tc := range []struct{ path, body, want string }{
		{"/api/policies/%2F/p", `{"pattern":"x","definition":{"max-priority":5}}`, "not recognised policy settings"},
		{"/api/operator-policies/%2F/p", `{"pattern":"x","definition":{"dead-letter-exchange":"d"}}`, "not recognised"},
		{"/api/policies/%2F/p", `{"pattern":"x","definition":{"message-ttl":"5"}}`, "message-ttl"},
		{"/api/policies/%2F/p", `{"pattern":"x"}`, "definition"},
		{"/api/policies/%2F/p", `{"pattern":"x","priority":"1","definition":{"expires":5}}`, "priority"},
	} {
		if st, b := e.raw(t, "PUT", tc.path, tc.body); st != http.StatusBadRequest || !strings.Contains(string(b), tc.want) {
			t.Errorf("PUT %s %s: %d %s, want 400 %q", tc.path, tc.body, st, b, tc.want)
		}
	}
	if st, b := e.raw(t, "PUT", "/api/operator-policies/%2F/cap", `{"pattern":".*","definition":{"max-length":1}}`); st != http.StatusCreated {
		t.Fatalf("operator policy: %d %s", st, b)
	}
	st, b = e.raw(t, "GET", "/api/queues/%2F/jobs", "")
	if !strings.Contains(string(b), `"operator_policy":"cap"`) {
		t.Errorf("queue under operator policy: %d %s", st, b)
	}
	if st, _ := e.raw(t, "GET", "/api/operator-policies/%2F/cap", ""); st != http.StatusOK {
		t.Errorf("get operator policy: %d", st)
	}
	if st, b := e.raw(t, "GET", "/api/parameters", ""); st != http.StatusOK || !strings.Contains(string(b), `"component":"operator_policy"`) ||
		!strings.Contains(string(b), `"name":"cap"`) {
		t.Errorf("parameters: %d %s", st, b)
	}
	if st, b := e.raw(t, "GET", "/api/vhost-limits", ""); st != http.StatusOK || strings.TrimSpace(string(b)) != "[]" {
		t.Errorf("vhost-limits: %d %s", st, b)
	}
	if st, _ := e.raw(t, "GET", "/api/policies/%2F/cap", ""); st != http.StatusNotFound {
		t.Errorf("operator policy seen as a policy: %d", st)
	}
}
