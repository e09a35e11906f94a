package main

import (
	"strings"
	"testing"
)

func TestGoName(t *testing.T) {
	tests := map[string]string{
		"consumer-tag":   "ConsumerTag",
		"nowait":         "NoWait",
		"no-ack":         "NoAck",
		"class-id":       "ClassId",
		"recover-async":  "RecoverAsync",
		"frame-min-size": "FrameMinSize",
	}
	for in, want := range tests {
		if got := goName(in); got != want {
			t.Errorf("goName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGenerateBits(t *testing.T) {
	// Nine consecutive bits need two octets; a domain resolves to its base.
	s := &spec{
		Domains: [][2]string{{"flag", "bit"}, {"queue-name", "shortstr"}},
		Classes: []class{{ID: 1, Name: "demo", Methods: []method{{ID: 2, Name: "many-bits", Arguments: []argument{
			{Name: "b1", Domain: "flag"}, {Name: "b2", Type: "bit"}, {Name: "b3", Type: "bit"}, {Name: "b4", Type: "bit"},
			{Name: "b5", Type: "bit"}, {Name: "b6", Type: "bit"}, {Name: "b7", Type: "bit"}, {Name: "b8", Type: "bit"},
			{Name: "b9", Type: "bit"}, {Name: "queue", Domain: "queue-name"},
		}}}}},
	}
	src, err := generate(s)
	if err != nil {
		t.Fatal(err)
	}
	out := string(src)
	for _, want := range []string{
		"type DemoManyBits struct",
		"Queue string // queue",
		"bits = d.octet(\"b9\")",
		"m.B9 = bits&(1<<0) != 0",
		"if m.B9 {\n\t\t\tbits |= 1 << 0",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("generated code lacks %q:\n%s", want, out)
		}
	}
	if _, err := generate(&spec{Classes: []class{{Name: "x", Methods: []method{{Name: "y", Arguments: []argument{{Name: "z", Domain: "nope"}}}}}}}); err == nil {
		t.Error("an unknown domain generated code")
	}
}
