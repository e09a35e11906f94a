package schema

import (
	"fmt"
	"strings"
	"testing"
)

const orderSchema = `{
  "type": "object",
  "required": ["id", "amount", "currency"],
  "properties": {
    "id": {"type": "string", "minLength": 1},
    "amount": {"type": "number", "minimum": 0},
    "currency": {"enum": ["EUR", "USD"]},
    "email": {"type": "string", "format": "email"},
    "items": {"type": "array", "items": {"$ref": "#/$defs/item"}}
  },
  "$defs": {
    "item": {"type": "object", "required": ["sku"], "properties": {"sku": {"type": "string"}, "a/b": {"type": "integer"}}}
  },
  "additionalProperties": false
}`

func TestCheck(t *testing.T) {
	s, err := Compile([]byte(orderSchema))
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	tests := []struct {
		name string
		body string
		want []string // "pointer|message substring"
	}{
		{"valid", `{"id":"a","amount":3.5,"currency":"EUR"}`, nil},
		{"wrong type", `{"id":"a","amount":"3","currency":"EUR"}`, []string{"/amount|want number"}},
		{"missing", `{"id":"a","currency":"EUR"}`, []string{"|amount"}},
		{"not json", `{"id":`, []string{"|not JSON"}},
		{"trailing garbage", `{"id":"a","amount":1,"currency":"EUR"} x`, []string{"|not JSON"}},
		{"format", `{"id":"a","amount":1,"currency":"EUR","email":"nope"}`, []string{"/email|email"}},
		{"nested ref, escaped pointer", `{"id":"a","amount":1,"currency":"EUR","items":[{"sku":"x","a/b":1.5}]}`,
			[]string{"/items/0/a~1b|want integer"}},
		{"several, sorted", `{"id":"","amount":-1,"currency":"GBP"}`,
			[]string{"/amount|", "/currency|", "/id|"}},
		{"extra property", `{"id":"a","amount":1,"currency":"EUR","x":1}`, []string{"|x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := s.Validate([]byte(tc.body))
			if len(got) != len(tc.want) {
				t.Fatalf("errors = %v, want %d like %v", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				ptr, msg, _ := strings.Cut(w, "|")
				if got[i].Pointer != ptr || !strings.Contains(got[i].Message, msg) {
					t.Errorf("error %d = %+v, want pointer %q and a message containing %q", i, got[i], ptr, msg)
				}
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"not json", `{"type":`, "not JSON"},
		{"not an object", `[1,2]`, "JSON object"},
		{"bad type keyword", `{"type": "nonsense"}`, "/type"},
		{"bad minimum", `{"minimum": "zero"}`, "minimum"},
		{"remote ref refused", `{"$ref": "https://example.com/s.json"}`, "example.com"},
		{"file ref refused", `{"$ref": "file:///etc/passwd"}`, "passwd"},
		{"dangling local ref", `{"$ref": "#/$defs/missing"}`, "missing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile([]byte(tc.doc))
			if err == nil {
				t.Fatalf("compile %s: no error", tc.doc)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "sluice:///") {
				t.Errorf("error %q leaks the internal schema URL", err)
			}
		})
	}
}

func TestBooleanSchemas(t *testing.T) {
	for _, tc := range []struct {
		doc   string
		valid bool
	}{{"true", true}, {"false", false}} {
		s, err := Compile([]byte(tc.doc))
		if err != nil {
			t.Fatalf("compile %s: %v", tc.doc, err)
		}
		if got := s.Validate([]byte(`{"a":1}`)) == nil; got != tc.valid {
			t.Errorf("schema %s: valid = %v, want %v", tc.doc, got, tc.valid)
		}
	}
}

func TestMaxErrors(t *testing.T) {
	var props, body []string
	for i := range 40 {
		props = append(props, fmt.Sprintf(`"p%02d": {"type": "string"}`, i))
		body = append(body, fmt.Sprintf(`"p%02d": %d`, i, i))
	}
	s, err := Compile([]byte(`{"properties": {` + strings.Join(props, ",") + `}}`))
	if err != nil {
		t.Fatal(err)
	}
	got := s.Validate([]byte(`{` + strings.Join(body, ",") + `}`))
	if len(got) != MaxErrors {
		t.Fatalf("got %d errors, want %d", len(got), MaxErrors)
	}
	if got[0].Pointer != "/p00" {
		t.Errorf("first error at %q, want /p00", got[0].Pointer)
	}
}

func TestIsJSON(t *testing.T) {
	for ct, want := range map[string]bool{
		"":                                  true,
		"application/json":                  true,
		"Application/JSON; charset=utf-8":   true,
		"application/vnd.order.v1+json":     true,
		"text/plain":                        false,
		"application/octet-stream":          false,
		"application/x-www-form-urlencoded": false,
		"json":                              false,
		"text/json+xml":                     false,
	} {
		if got := IsJSON(ct); got != want {
			t.Errorf("IsJSON(%q) = %v, want %v", ct, got, want)
		}
	}
}

func TestCacheSharesAndReleases(t *testing.T) {
	c := NewCache()
	a, err := c.Acquire([]byte(orderSchema))
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Acquire([]byte(orderSchema))
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Error("same document compiled twice")
	}
	if _, err := c.Acquire([]byte(`{"type": 7}`)); err == nil {
		t.Error("a schema that does not compile was accepted")
	}
	if c.Len() != 1 {
		t.Errorf("Len = %d, want 1", c.Len())
	}
	c.Release(a)
	if c.Len() != 1 {
		t.Errorf("after one release Len = %d, want 1", c.Len())
	}
	c.Release(b)
	if c.Len() != 0 {
		t.Errorf("after both releases Len = %d, want 0", c.Len())
	}
}

// FuzzCheck feeds arbitrary bodies to a compiled schema: never a panic,
// and an invalid verdict always comes with at least one error.
func FuzzCheck(f *testing.F) {
	s, err := Compile([]byte(orderSchema))
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{`{"id":"a","amount":1,"currency":"EUR"}`, `[`, `{"items":[{"a/b":1e400}]}`,
		`"\ud800"`, strings.Repeat("[", 20000), `{"id":"a","amount":-0.0,"currency":"USD","email":"a@b"}`, ``} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		errs := s.Validate(body)
		for _, e := range errs {
			if e.Message == "" {
				t.Fatalf("error without a message: %+v", e)
			}
		}
		if len(errs) > MaxErrors {
			t.Fatalf("%d errors, more than %d", len(errs), MaxErrors)
		}
	})
}
