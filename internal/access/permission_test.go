package access

import (
	"errors"
	"sync/atomic"
	"testing"
)

// Permissions match as RabbitMQ's re:run: unanchored, "" only the empty
// name, a broken expression nothing.
func TestMatches(t *testing.T) {
	tests := []struct {
		expr, name string
		want       bool
	}{
		{".*", "anything", true},
		{".*", "", true},
		{"", "", true},
		{"", "q", false},
		{"app", "my-app-queue", true},
		{`^app\.`, "app.q", true},
		{`^app\.`, "xapp.q", false},
		{"^(app|amq\\.default)$", "amq.default", true},
		{"(", "(", false},
	}
	for _, tt := range tests {
		if got := Matches(tt.expr, tt.name); got != tt.want {
			t.Errorf("Matches(%q, %q) = %v, want %v", tt.expr, tt.name, got, tt.want)
		}
	}
}

// A checker reloads when the generation moves, names the default
// exchange amq.default, and refuses everything without a record.
func TestCheckerFollowsGeneration(t *testing.T) {
	var gen atomic.Uint64
	perm, has, loads := Permission{Configure: "^a", Write: "^amq\\.default$", Read: ".*"}, true, 0
	c := NewChecker("u", "/", &gen, func() (Permission, bool, error) { loads++; return perm, has, nil })
	if err := c.Check(Configure, "queue", "a1"); err != nil {
		t.Fatalf("configure a1: %v", err)
	}
	var d *Denied
	if err := c.Check(Configure, "queue", "b1"); !errors.As(err, &d) ||
		d.Reason != "access to queue 'b1' in vhost '/' refused for user 'u'" {
		t.Fatalf("configure b1: %v", err)
	}
	if err := c.Check(Write, "exchange", ""); err != nil {
		t.Fatalf("write on the default exchange spelt \"\": %v", err)
	}
	if err := c.Check(Write, "exchange", "x"); err == nil {
		t.Fatal("write on x allowed")
	}
	if loads != 1 {
		t.Fatalf("%d loads without a change, want 1", loads)
	}
	has = false
	if err := c.Check(Read, "queue", "a1"); err != nil {
		t.Fatalf("read before the generation moved: %v", err)
	}
	gen.Add(1)
	if err := c.Check(Read, "queue", "a1"); !errors.As(err, &d) || d.Reason != "access to vhost '/' refused for user 'u'" {
		t.Fatalf("read after the record went: %v", err)
	}
	var nilChecker *Checker
	if err := nilChecker.Check(Configure, "queue", "anything"); err != nil {
		t.Fatalf("nil checker: %v", err)
	}
}
