package schema

import (
	"os"
	"testing"
)

func loadOrder(t testing.TB) (*Schema, []byte) {
	t.Helper()
	doc, err := os.ReadFile("testdata/order.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile("testdata/order.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Compile(doc)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return s, body
}

func TestOrderFixture(t *testing.T) {
	s, body := loadOrder(t)
	if errs := s.Validate(body); errs != nil {
		t.Fatalf("the benchmark's document does not match its schema: %v", errs)
	}
	if len(body) < 900 || len(body) > 1200 {
		t.Errorf("document of %d bytes, want about 1 KiB", len(body))
	}
}

// BenchmarkValidate parses and checks a 1 KiB order against a schema of
// about 20 rules (types, required, patterns, formats, bounds, enum).
func BenchmarkValidate(b *testing.B) {
	s, body := loadOrder(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if errs := s.Validate(body); errs != nil {
			b.Fatal(errs)
		}
	}
}

// BenchmarkValidateInvalid measures the failing path, which builds the
// error list.
func BenchmarkValidateInvalid(b *testing.B) {
	s, _ := loadOrder(b)
	body := []byte(`{"id":"x","customer":{"name":""},"amount":"1","currency":"JPY","items":[],"created_at":"yesterday"}`)
	b.ReportAllocs()
	for b.Loop() {
		if errs := s.Validate(body); errs == nil {
			b.Fatal("invalid document accepted")
		}
	}
}
