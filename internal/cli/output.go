package cli

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
)

// table prints rows under a header, aligned.
func (e *env) table(header []string, rows [][]string) {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	_ = tw.Flush()
}

// printJSON prints v indented.
func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// out prints v as JSON with --json, else calls tbl.
func (e *env) out(v any, tbl func()) error {
	if e.json {
		return e.printJSON(v)
	}
	tbl()
	return nil
}

// done prints a one-line confirmation (or {"ok":true,...} with --json).
func (e *env) done(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if e.json {
		return e.printJSON(map[string]any{"ok": true, "message": msg})
	}
	fmt.Fprintln(e.stdout, msg)
	return nil
}

func truncate(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// keyValues collects repeated name=value flags.
type keyValues map[string]string

func (kv keyValues) String() string { return fmt.Sprint(map[string]string(kv)) }

func (kv keyValues) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: want name=value", s)
	}
	kv[k] = v
	return nil
}

// typed turns a flag value into a JSON value: integers, other numbers
// (x-retry-jitter=0.2) and booleans as such, anything else a string.
func typed(v string) any {
	var n json.Number
	if err := json.Unmarshal([]byte(v), &n); err == nil {
		if i, err := n.Int64(); err == nil && !strings.ContainsAny(v, ".eE") {
			return i
		}
		if f, err := n.Float64(); err == nil {
			return f
		}
	}
	switch v {
	case "true":
		return true
	case "false":
		return false
	}
	return v
}

// stringList collects repeated string flags.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }
