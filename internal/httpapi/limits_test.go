package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// RabbitMQ's user limits and vhost limits over HTTP: PUT
// /api/user-limits/{user}/max-connections {"value": N}, the listings, and
// the refusal the next AMQP connection then gets.
func TestUserAndVHostLimitsAPI(t *testing.T) {
	e := start(t)
	if st, b := e.raw(t, "PUT", "/api/user-limits/guest/max-connections", `{"value": 1}`); st != http.StatusNoContent {
		t.Fatalf("put user limit: %d %s", st, b)
	}
	if st, b := e.raw(t, "GET", "/api/user-limits", ""); st != http.StatusOK || strings.TrimSpace(string(b)) != `[{"user":"guest","value":{"max-connections":1}}]` {
		t.Errorf("user-limits: %d %s", st, b)
	}
	if st, b := e.raw(t, "GET", "/api/user-limits/guest", ""); st != http.StatusOK || !strings.Contains(string(b), `"max-connections":1`) {
		t.Errorf("user-limits/guest: %d %s", st, b)
	}
	conn := e.sb.Dial(t)
	_, err := amqp.Dial(e.sb.URL())
	if ae, ok := err.(*amqp.Error); !ok || ae.Code != amqp.NotAllowed || !strings.Contains(ae.Reason, "User connection limit (1) is reached") {
		t.Errorf("second connection: %v, want 530 with the user limit named", err)
	}
	conn.Close()

	if st, b := e.raw(t, "PUT", "/api/vhost-limits/%2F/max-connections", `{"value": "5"}`); st != http.StatusNoContent {
		t.Fatalf("put vhost limit (value as a string, as rabbitmqadmin sends it): %d %s", st, b)
	}
	if st, b := e.raw(t, "GET", "/api/vhost-limits/%2F", ""); st != http.StatusOK || strings.TrimSpace(string(b)) != `[{"value":{"max-connections":5},"vhost":"/"}]` {
		t.Errorf("vhost-limits: %d %s", st, b)
	}
	for _, tt := range []struct {
		method, path, body string
		want               int
	}{
		{"PUT", "/api/vhost-limits/%2F/max-channels", `{"value": 1}`, http.StatusBadRequest},
		{"PUT", "/api/user-limits/nobody/max-connections", `{"value": 1}`, http.StatusNotFound},
		{"PUT", "/api/vhost-limits/%2F/max-connections", `{"value": 1.5}`, http.StatusBadRequest},
		{"PUT", "/api/vhost-limits/%2F/max-connections", `{}`, http.StatusBadRequest},
		{"DELETE", "/api/user-limits/guest/max-connections", "", http.StatusNoContent},
		{"DELETE", "/api/user-limits/guest/max-connections", "", http.StatusNotFound},
		{"DELETE", "/api/vhost-limits/%2F/max-connections", "", http.StatusNoContent},
	} {
		if st, b := e.raw(t, tt.method, tt.path, tt.body); st != tt.want {
			t.Errorf("%s %s %s: %d %s, want %d", tt.method, tt.path, tt.body, st, b, tt.want)
		}
	}
	if st, b := e.raw(t, "GET", "/api/vhost-limits", ""); st != http.StatusOK || strings.TrimSpace(string(b)) != "[]" {
		t.Errorf("vhost-limits after delete: %d %s", st, b)
	}
}

// Limits travel in definitions files as RabbitMQ writes them: users[].limits
// and the vhost-limits runtime parameter.
func TestLimitsInDefinitions(t *testing.T) {
	e := start(t)
	for _, p := range []string{"/api/user-limits/guest/max-connections", "/api/vhost-limits/%2F/max-connections"} {
		if st, b := e.raw(t, "PUT", p, `{"value": 7}`); st != http.StatusNoContent {
			t.Fatalf("put %s: %d %s", p, st, b)
		}
	}
	st, defs := e.raw(t, "GET", "/api/definitions", "")
	if st != http.StatusOK || !strings.Contains(string(defs), `"limits":{"max-connections":7}`) ||
		!strings.Contains(string(defs), `{"vhost":"/","component":"vhost-limits","name":"limits","value":{"max-connections":7}}`) {
		t.Fatalf("export: %d %s", st, defs)
	}
	for _, p := range []string{"/api/user-limits/guest/max-connections", "/api/vhost-limits/%2F/max-connections"} {
		if st, b := e.raw(t, "DELETE", p, ""); st != http.StatusNoContent {
			t.Fatalf("delete %s: %d %s", p, st, b)
		}
	}
	if st, b := e.raw(t, "POST", "/api/definitions", string(defs)); st/100 != 2 {
		t.Fatalf("import: %d %s", st, b)
	}
	if st, b := e.raw(t, "GET", "/api/user-limits/guest", ""); st != http.StatusOK || !strings.Contains(string(b), `"max-connections":7`) {
		t.Errorf("user limit after import: %d %s", st, b)
	}
	if st, b := e.raw(t, "GET", "/api/vhost-limits/%2F", ""); st != http.StatusOK || !strings.Contains(string(b), `"max-connections":7`) {
		t.Errorf("vhost limit after import: %d %s", st, b)
	}
	bad := `{"users":[{"name":"guest","password_hash":"","tags":["administrator"],"limits":{"max-queues":5}}]}`
	if st, b := e.raw(t, "POST", "/api/definitions", bad); st != http.StatusBadRequest || !strings.Contains(string(b), "max-queues") {
		t.Errorf("import of an unsupported limit: %d %s", st, b)
	}
}
