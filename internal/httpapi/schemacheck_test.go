package httpapi_test

import (
	"strings"
	"testing"
)

func TestSchemaValidateChecksWithoutPublishing(t *testing.T) {
	e := start(t)
	if code, body := e.raw(t, "PUT", "/api/schemas/%2F/order",
		`{"schema": {"type": "object", "properties": {"amount": {"type": "number"}}, "required": ["amount"]}}`); code != 201 {
		t.Fatalf("put schema: %d %s", code, body)
	}
	for _, c := range []struct {
		body, want string
		code       int
	}{
		{`{"payload": "{\"amount\": 12}"}`, `"valid":true`, 200},
		{`{"payload": "{\"amount\": \"12\"}"}`, `"pointer":"/amount"`, 422},
		{`{"payload": "not json"}`, `body is not JSON`, 422},
		{`{"payload": "e30=", "payload_encoding": "base64"}`, `amount`, 422}, // {}
		{`{"payload": 1}`, `payload`, 400},
	} {
		code, body := e.raw(t, "POST", "/api/schemas/%2F/order/validate", c.body)
		if code != c.code || !strings.Contains(string(body), c.want) {
			t.Errorf("validate %s: %d %s, want %d with %s", c.body, code, body, c.code, c.want)
		}
	}
	if code, _ := e.raw(t, "POST", "/api/schemas/%2F/nope/validate", `{"payload": "{}"}`); code != 404 {
		t.Errorf("unknown schema: %d, want 404", code)
	}
}
