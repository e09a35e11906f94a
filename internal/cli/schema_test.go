package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSchemaCommands(t *testing.T) {
	server, _ := startServer(t)
	file := filepath.Join(t.TempDir(), "order.schema.json")
	if err := os.WriteFile(file, []byte(`{"type":"object","required":["amount"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"put from a file", "", []string{"schema", "put", "order", "--file", file}, ExitOK, "schema order saved", ""},
		{"put from stdin", `{"type":"string"}`, []string{"schema", "put", "text"}, ExitOK, "schema text saved", ""},
		{"put not json", `{"type":`, []string{"schema", "put", "bad"}, ExitUsage, "", "not JSON"},
		{"put does not compile", `{"type": 5}`, []string{"schema", "put", "bad"}, ExitUsage, "", "does not compile"},
		{"put without a name", `{}`, []string{"schema", "put"}, ExitUsage, "", "want one schema name"},
		{"get", "", []string{"schema", "get", "order"}, ExitOK, `"required": [`, ""},
		{"get json", "", []string{"schema", "get", "order", "--json"}, ExitOK, `"used_by": []`, ""},
		{"get missing", "", []string{"schema", "get", "nope"}, ExitNotFound, "", "no schema 'nope'"},
		{"declare a user", "", []string{"queue", "declare", "orders", "--arg", "x-schema=order"}, ExitOK, "", ""},
		{"ls", "", []string{"schema", "ls"}, ExitOK, "queue 'orders'", ""},
		{"delete in use", "", []string{"schema", "delete", "order"}, ExitConflict, "", "in use by queue 'orders'"},
		{"delete", "", []string{"schema", "delete", "text"}, ExitOK, "schema text deleted", ""},
		{"delete missing", "", []string{"schema", "delete", "text"}, ExitNotFound, "", "no schema 'text'"},
	}
	for _, st := range steps {
		r := sluice(t, server, st.stdin, st.args...)
		if r.code != st.code || !strings.Contains(r.stdout, st.stdout) || !strings.Contains(r.stderr, st.stderr) {
			t.Errorf("%s: sluice %s = %d\nstdout: %s\nstderr: %s\nwant %d, stdout with %q, stderr with %q",
				st.name, strings.Join(st.args, " "), r.code, r.stdout, r.stderr, st.code, st.stdout, st.stderr)
		}
	}
}
