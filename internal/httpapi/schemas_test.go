package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluicemq/sluice/internal/api"
)

const orderSchemaBody = `{"schema": {"type": "object", "required": ["amount"], "properties": {"amount": {"type": "number"}}}}`

func TestSchemaCRUD(t *testing.T) {
	e := start(t)
	steps := []struct {
		name, method, path, body string
		status                   int
		want                     string // substring of the answer
	}{
		{"create", "PUT", "/api/schemas/%2F/order", orderSchemaBody, http.StatusCreated, ""},
		{"replace", "PUT", "/api/schemas/%2F/order", orderSchemaBody, http.StatusNoContent, ""},
		{"get", "GET", "/api/schemas/%2F/order", "", http.StatusOK, `"required":["amount"]`},
		{"list vhost", "GET", "/api/schemas/%2F", "", http.StatusOK, `"name":"order"`},
		{"list all", "GET", "/api/schemas", "", http.StatusOK, `"name":"order"`},
		{"does not compile", "PUT", "/api/schemas/%2F/bad", `{"schema": {"type": 12}}`, http.StatusBadRequest, "does not compile"},
		{"not an object", "PUT", "/api/schemas/%2F/bad", `{"schema": "string"}`, http.StatusBadRequest, "JSON object"},
		{"malformed body", "PUT", "/api/schemas/%2F/bad", `{"schema": `, http.StatusBadRequest, ""},
		{"get missing", "GET", "/api/schemas/%2F/nope", "", http.StatusNotFound, "no schema 'nope'"},
		{"delete missing", "DELETE", "/api/schemas/%2F/nope", "", http.StatusNotFound, "no schema 'nope'"},
		{"unknown vhost", "GET", "/api/schemas/elsewhere/order", "", http.StatusNotFound, "vhost"},
		{"use it", "PUT", "/api/queues/%2F/orders", `{"durable": true, "arguments": {"x-schema": "order"}}`, http.StatusCreated, ""},
		{"shows users", "GET", "/api/schemas/%2F/order", "", http.StatusOK, `"used_by":["queue 'orders'"]`},
		{"delete in use", "DELETE", "/api/schemas/%2F/order", "", http.StatusConflict, "in use by queue 'orders'"},
		{"unknown schema in a declare", "PUT", "/api/queues/%2F/other", `{"arguments": {"x-schema": "nope"}}`, http.StatusConflict, "no schema 'nope'"},
		{"drop the user", "DELETE", "/api/queues/%2F/orders", "", http.StatusNoContent, ""},
		{"delete", "DELETE", "/api/schemas/%2F/order", "", http.StatusNoContent, ""},
		{"gone", "GET", "/api/schemas/%2F/order", "", http.StatusNotFound, ""},
	}
	for _, st := range steps {
		status, body := e.raw(t, st.method, st.path, st.body)
		if status != st.status || !strings.Contains(string(body), st.want) {
			t.Errorf("%s: %s %s = %d %s, want %d containing %q", st.name, st.method, st.path, status, body, st.status, st.want)
		}
	}
}

func TestHTTPPublishAnswers422(t *testing.T) {
	e := start(t)
	if status, body := e.raw(t, "PUT", "/api/schemas/%2F/order", orderSchemaBody); status != http.StatusCreated {
		t.Fatalf("put schema: %d %s", status, body)
	}
	_, ch := e.amqpChannel(t)
	if _, err := ch.QueueDeclare("orders", true, false, false, false, amqp.Table{"x-schema": "order", "x-max-message-size": int32(64)}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if r, err := e.c.Publish(ctx, "/", "", api.Publish{RoutingKey: "orders", Payload: `{"amount": 3}`}); err != nil || !r.Routed {
		t.Fatalf("valid publish: %+v, %v", r, err)
	}
	tests := []struct {
		name, payload, pointer, reason string
	}{
		{"schema", `{"amount": "three"}`, "/amount", "message does not match schema 'order': /amount: "},
		{"not json", `three`, "", "message does not match schema 'order': body is not JSON"},
		{"size", `{"amount": 3, "pad": "` + strings.Repeat("x", 80) + `"}`, "", "message size 104 is larger than max size 64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.raw(t, "POST", "/api/exchanges/%2F/amq.default/publish",
				`{"routing_key": "orders", "payload": `+strings.TrimSpace(jsonString(tc.payload))+`, "payload_encoding": "string", "properties": {}}`)
			if status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d %s, want 422", status, body)
			}
			var vf api.Error
			if err := json.Unmarshal(body, &vf); err != nil {
				t.Fatalf("decode %s: %v", body, err)
			}
			if len(vf.Errors) == 0 || vf.Errors[0].Pointer != tc.pointer || !strings.HasPrefix(vf.Reason, tc.reason) || vf.Kind != "invalid_message" {
				t.Errorf("answer = %+v, want first error at %q and a reason starting %q", vf, tc.pointer, tc.reason)
			}
		})
	}
	q, err := e.c.Queue(ctx, "/", "orders")
	if err != nil {
		t.Fatal(err)
	}
	if q.Messages != 1 {
		t.Errorf("queue holds %d messages, want 1", q.Messages)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
