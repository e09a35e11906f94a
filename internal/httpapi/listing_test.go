package httpapi_test

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestListingPagingFilterSortColumns: RabbitMQ's listing query — name
// with use_regex, sort, sort_reverse, columns, and page/page_size
// answering the page object.
func TestListingPagingFilterSortColumns(t *testing.T) {
	e := start(t)
	for i := range 7 {
		declare(t, e.c, fmt.Sprintf("orders.%d", i), nil)
	}
	declare(t, e.c, "payments", nil)
	declare(t, e.c, "Orders-EU", nil)

	names := func(t *testing.T, path string) []string {
		t.Helper()
		st, b := e.raw(t, "GET", path, "")
		if st != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, st, b)
		}
		var qs []map[string]any
		mustJSON(t, b, &qs)
		var out []string
		for _, q := range qs {
			out = append(out, q["name"].(string))
		}
		return out
	}
	t.Run("regex", func(t *testing.T) {
		got := names(t, "/api/queues/%2F?use_regex=true&name=^orders\\.[0-2]$&sort=name")
		if want := []string{"orders.0", "orders.1", "orders.2"}; !reflect.DeepEqual(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("substring, case-insensitive", func(t *testing.T) {
		got := names(t, "/api/queues?name=orders-&sort=name")
		if want := []string{"Orders-EU"}; !reflect.DeepEqual(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("sort reverse", func(t *testing.T) {
		got := names(t, "/api/queues/%2F?sort=name&sort_reverse=true&name=orders.")
		if got[0] != "orders.6" || got[len(got)-1] != "orders.0" {
			t.Errorf("order %v", got)
		}
	})
	t.Run("page", func(t *testing.T) {
		st, b := e.raw(t, "GET", "/api/queues/%2F?page=2&page_size=3&name=orders.&sort=name&columns=name,messages,message_stats.publish", "")
		if st != http.StatusOK {
			t.Fatalf("%d %s", st, b)
		}
		var p struct {
			Items         []map[string]any `json:"items"`
			Page          int              `json:"page"`
			PageCount     int              `json:"page_count"`
			PageSize      int              `json:"page_size"`
			FilteredCount int              `json:"filtered_count"`
			ItemCount     int              `json:"item_count"`
			TotalCount    int              `json:"total_count"`
		}
		mustJSON(t, b, &p)
		if p.Page != 2 || p.PageCount != 3 || p.PageSize != 3 || p.FilteredCount != 7 || p.ItemCount != 3 || p.TotalCount != 9 {
			t.Errorf("page object %+v", p)
		}
		want := []map[string]any{
			{"name": "orders.3", "messages": float64(0), "message_stats": map[string]any{"publish": float64(0)}},
			{"name": "orders.4", "messages": float64(0), "message_stats": map[string]any{"publish": float64(0)}},
			{"name": "orders.5", "messages": float64(0), "message_stats": map[string]any{"publish": float64(0)}},
		}
		if !reflect.DeepEqual(p.Items, want) {
			t.Errorf("items %v, want %v", p.Items, want)
		}
	})
	t.Run("bad queries", func(t *testing.T) {
		for _, q := range []string{"page=0", "page=x", "page=1&page_size=501", "page=9", "name=(&use_regex=true"} {
			st, b := e.raw(t, "GET", "/api/queues?"+q, "")
			if st != http.StatusBadRequest || !strings.Contains(string(b), "bad_request") {
				t.Errorf("%s: %d %s, want 400", q, st, b)
			}
		}
	})
	t.Run("exchanges sorted by type", func(t *testing.T) {
		st, b := e.raw(t, "GET", "/api/exchanges/%2F?sort=type&columns=type", "")
		if st != http.StatusOK {
			t.Fatalf("%d %s", st, b)
		}
		var xs []map[string]any
		mustJSON(t, b, &xs)
		if len(xs) == 0 || xs[0]["type"] != "direct" || len(xs[0]) != 1 {
			t.Errorf("exchanges %v", xs)
		}
	})
}

// TestLenientBooleansAndNumbers: rabbitmqadmin sends "auto_delete":
// "false" and "count": "1" as strings, which RabbitMQ accepts.
func TestLenientBooleansAndNumbers(t *testing.T) {
	e := start(t)
	for path, body := range map[string]string{
		"/api/queues/%2F/lq":    `{"auto_delete":"false","durable":"true","arguments":{},"vhost":"/","name":"lq"}`,
		"/api/exchanges/%2F/lx": `{"type":"direct","auto_delete":"false","durable":"true","internal":"false","arguments":{}}`,
	} {
		if st, b := e.raw(t, "PUT", path, body); st != http.StatusCreated {
			t.Fatalf("PUT %s: %d %s", path, st, b)
		}
	}
	if st, b := e.raw(t, "POST", "/api/exchanges/%2F/amq.default/publish",
		`{"routing_key":"lq","payload":"hi","payload_encoding":"string","properties":{}}`); st != http.StatusOK {
		t.Fatalf("publish: %d %s", st, b)
	}
	st, b := e.raw(t, "POST", "/api/queues/%2F/lq/get", `{"count":"1","ackmode":"ack_requeue_true","encoding":"auto","truncate":"50000"}`)
	if st != http.StatusOK || !strings.Contains(string(b), `"payload":"hi"`) {
		t.Fatalf("get: %d %s", st, b)
	}
	st, b = e.raw(t, "PUT", "/api/queues/%2F/bad", `{"auto_delete":"maybe"}`)
	if st != http.StatusBadRequest || !strings.Contains(string(b), `auto_delete`) {
		t.Errorf("bad boolean: %d %s", st, b)
	}
	st, b = e.raw(t, "POST", "/api/queues/%2F/lq/get", `{"count":"one","ackmode":"ack_requeue_true"}`)
	if st != http.StatusBadRequest || !strings.Contains(string(b), `count`) {
		t.Errorf("bad number: %d %s", st, b)
	}
}

// TestExchangeToExchangeBindings: /api/bindings/{vhost}/e/{src}/e/{dst}
// binds, lists, routes and unbinds; /api/exchanges/.../bindings/source
// and destination list an exchange's bindings.
func TestExchangeToExchangeBindings(t *testing.T) {
	e := start(t)
	for _, x := range []string{"src", "dst"} {
		if st, b := e.raw(t, "PUT", "/api/exchanges/%2F/"+x, `{"type":"direct"}`); st != http.StatusCreated {
			t.Fatalf("exchange %s: %d %s", x, st, b)
		}
	}
	declare(t, e.c, "sink", nil)
	if st, b := e.raw(t, "POST", "/api/bindings/%2F/e/dst/q/sink", `{"routing_key":"k"}`); st != http.StatusCreated {
		t.Fatalf("bind queue: %d %s", st, b)
	}
	st, b := e.raw(t, "POST", "/api/bindings/%2F/e/src/e/dst", `{"routing_key":"k","arguments":{}}`)
	if st != http.StatusCreated {
		t.Fatalf("bind e2e: %d %s", st, b)
	}
	st, b = e.raw(t, "GET", "/api/bindings/%2F/e/src/e/dst", "")
	var bs []map[string]any
	mustJSON(t, b, &bs)
	if st != http.StatusOK || len(bs) != 1 || bs[0]["destination_type"] != "exchange" || bs[0]["properties_key"] != "k" {
		t.Fatalf("list e2e: %d %s", st, b)
	}
	if st, b := e.raw(t, "GET", "/api/bindings/%2F/e/src/e/dst/k", ""); st != http.StatusOK {
		t.Errorf("get e2e binding: %d %s", st, b)
	}
	_, ch := e.amqpChannel(t)
	publishConfirmed(t, ch, "src", "k", amqp.Publishing{Body: []byte("through")})
	if st, b := e.raw(t, "POST", "/api/queues/%2F/sink/get", `{"count":1,"ackmode":"ack_requeue_false"}`); st != http.StatusOK ||
		!strings.Contains(string(b), "through") {
		t.Fatalf("routed through e2e binding: %d %s", st, b)
	}
	for path, want := range map[string][]string{
		"/api/exchanges/%2F/src/bindings/source":      {"dst"},
		"/api/exchanges/%2F/dst/bindings/destination": {"dst"},
		"/api/exchanges/%2F/dst/bindings/source":      {"sink"},
		"/api/exchanges/%2F/src/bindings/destination": nil,
	} {
		st, b := e.raw(t, "GET", path, "")
		var got []map[string]any
		mustJSON(t, b, &got)
		var dsts []string
		for _, g := range got {
			dsts = append(dsts, g["destination"].(string))
		}
		if st != http.StatusOK || !reflect.DeepEqual(dsts, want) {
			t.Errorf("GET %s: %d %v, want %v", path, st, dsts, want)
		}
	}
	if st, b := e.raw(t, "GET", "/api/exchanges/%2F/nope/bindings/source", ""); st != http.StatusNotFound {
		t.Errorf("missing exchange: %d %s", st, b)
	}
	if st, b := e.raw(t, "POST", "/api/bindings/%2F/e/src/e/nope", `{}`); st != http.StatusNotFound {
		t.Errorf("bind to missing exchange: %d %s", st, b)
	}
	if st, b := e.raw(t, "DELETE", "/api/bindings/%2F/e/src/e/dst/k", ""); st != http.StatusNoContent {
		t.Fatalf("unbind: %d %s", st, b)
	}
	// RabbitMQ's properties key (the routing key escaped) names a binding too.
	declare(t, e.c, "star", nil)
	if st, b := e.raw(t, "POST", "/api/bindings/%2F/e/src/q/star", `{"routing_key":"a.*"}`); st != http.StatusCreated {
		t.Fatalf("bind star: %d %s", st, b)
	}
	if st, b := e.raw(t, "DELETE", "/api/bindings/%2F/e/src/q/star/a.%252A", ""); st != http.StatusNoContent {
		t.Errorf("unbind by RabbitMQ's properties key: %d %s", st, b)
	}
	if st, b := e.raw(t, "DELETE", "/api/bindings/%2F/e/src/e/dst/k", ""); st != http.StatusNotFound {
		t.Errorf("unbind twice: %d %s", st, b)
	}
}
