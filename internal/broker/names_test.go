package broker

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"", true},
		{"orders.created", true},
		{"ü-名前-\uE000-🙂", true},
		{strings.Repeat("q", 255), true},
		{strings.Repeat("q", 256), false},
		{strings.Repeat("é", 128), false}, // 256 bytes
		{"a\x00b", false},
		{"a\nb", false},
		{"a\rb", false},
		{"a\tb", false},
		{"a\x7fb", false},
		{"a\u0085b", false},
		{"a\u2028b", false},
		{"bad-\xff", false},
		{"\xed\xa0\x80", false}, // a UTF-16 surrogate
	} {
		err := CheckName("queue", tc.name)
		if (err == nil) != tc.ok || (err != nil && CodeOf(err) != InvalidArgument) {
			t.Errorf("CheckName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	if CheckRoutingKey(strings.Repeat("k", 255)) != nil || CheckRoutingKey(strings.Repeat("k", 256)) == nil {
		t.Error("routing keys: 255 bytes pass, 256 do not")
	}
}

// FuzzCheckName: the rule never panics, and what it accepts is what the
// doors rely on: valid UTF-8, a short string, no control character, and
// an error text that is itself valid UTF-8 (it goes into reply texts and
// JSON).
func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"", "q", "amq.gen-x", "a\x00b", "bad-\xff\xfe", "line\nbreak", "ü名", strings.Repeat("x", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := CheckName("queue", name)
		if err != nil {
			if !utf8.ValidString(err.Error()) {
				t.Fatalf("error text is not UTF-8: %q", err.Error())
			}
			return
		}
		if len(name) > MaxShortString || !utf8.ValidString(name) {
			t.Fatalf("accepted %q", name)
		}
		for _, r := range name {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' {
				t.Fatalf("accepted %q with %U", name, r)
			}
		}
	})
}
