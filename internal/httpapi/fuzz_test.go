package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"
)

// fuzzRoutes are the routes FuzzAPIBodies sends bodies to: every route
// that reads a JSON body of its own shape.
var fuzzRoutes = []struct{ method, path string }{
	{"PUT", "/api/queues/%2F/fz"},
	{"PUT", "/api/exchanges/%2F/fzx"},
	{"POST", "/api/exchanges/%2F/amq.default/publish"},
	{"POST", "/api/queues/%2F/fz/get"},
	{"POST", "/api/bindings/%2F/e/amq.direct/q/fz"},
	{"PUT", "/api/users/fzu"},
	{"PUT", "/api/permissions/%2F/fzu"},
	{"PUT", "/api/policies/%2F/fzp"},
	{"PUT", "/api/schemas/%2F/fzs"},
	{"POST", "/api/queues/%2F/fz/redrive"},
	{"POST", "/api/definitions"},
	{"PUT", "/api/vhosts/fzv"},
	{"PUT", "/api/queues/%2F/fz/messages/1"},
}

// FuzzAPIBodies sends arbitrary bodies to the API's JSON routes, as guest
// against a real broker: no body may crash the broker or earn a 5xx, and
// every answer is JSON (or empty).
func FuzzAPIBodies(f *testing.F) {
	seeds := []string{
		`{}`, `{"durable":true,"arguments":{"x-max-length":10,"x-dead-letter-exchange":""}}`,
		`{"type":"topic","durable":"true"}`,
		`{"routing_key":"fz","payload":"aGk=","payload_encoding":"base64","properties":{"headers":{"a":[1,{"b":null}]},"delivery_mode":2}}`,
		`{"count":"3","ackmode":"ack_requeue_true","encoding":"auto"}`,
		`{"routing_key":"k","arguments":{"x-match":"any"}}`,
		`{"password":"p","tags":"management,monitoring"}`,
		`{"configure":".*","write":"(","read":""}`,
		`{"pattern":"^fz","definition":{"max-length":1},"apply-to":"queues"}`,
		`{"schema":{"type":"object","required":["a"]}}`,
		`{"filter":{"reason":"rejected"},"rate":"10","dry_run":true}`,
		`{"users":[{"name":"x","password_hash":"","hashing_algorithm":"bcrypt","tags":[]}],"queues":[{"name":"q","vhost":"/"}]}`,
		`{"description":"v"}`, `{"payload":"new","properties":{"priority":300}}`,
		`[`, `{"a":`, `null`, `"\ud800"`, `{"durable":1e309}`,
	}
	for i, s := range seeds {
		f.Add(uint8(i%len(fuzzRoutes)), []byte(s))
	}
	e := startWith(f, nil)
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		req := httptest.NewRequest(rt.method, rt.path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth("guest", "guest")
		rec := e.serve(req, "127.0.0.1:5000")
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", rt.method, rt.path, body, rec.Code, rec.Body)
		}
		if out := bytes.TrimSpace(rec.Body.Bytes()); len(out) > 0 && !json.Valid(out) {
			t.Fatalf("%s %s %q: answer is not JSON: %s", rt.method, rt.path, body, out)
		}
	})
}
