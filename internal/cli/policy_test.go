package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPolicyAndDefinitionsCommands(t *testing.T) {
	server, _ := startServer(t)
	file := filepath.Join(t.TempDir(), "defs.json")
	steps := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"declare", []string{"queue", "declare", "orders.new"}, ExitOK, "", ""},
		{"set", []string{"policy", "set", "dlx", "--pattern", `^orders\.`, "--definition", `{"dead-letter-exchange":"dlx","max-length":9}`, "--priority", "2"}, ExitOK, "policy dlx set", ""},
		{"set operator", []string{"policy", "set", "cap", "--operator", "--pattern", ".*", "--definition", `{"max-length":5}`}, ExitOK, "policy cap set", ""},
		{"set refused", []string{"policy", "set", "bad", "--pattern", ".*", "--definition", `{"max-priority":5}`}, ExitUsage, "", "not recognised policy settings"},
		{"set not json", []string{"policy", "set", "bad", "--pattern", ".*", "--definition", `{`}, ExitUsage, "", "not a JSON object"},
		{"ls", []string{"policy", "ls"}, ExitOK, `dead-letter-exchange`, ""},
		{"ls operator", []string{"policy", "ls", "--operator"}, ExitOK, "cap", ""},
		{"queue shows it", []string{"queue", "ls", "--json"}, ExitOK, `"policy": "dlx"`, ""},
		{"export", []string{"definitions", "export", "--file", file}, ExitOK, "definitions written", ""},
		{"delete", []string{"policy", "delete", "dlx"}, ExitOK, "policy dlx deleted", ""},
		{"delete missing", []string{"policy", "delete", "dlx"}, ExitNotFound, "", "no policy 'dlx'"},
		{"import", []string{"definitions", "import", "--file", file}, ExitOK, "definitions imported", ""},
		{"back", []string{"policy", "ls"}, ExitOK, "dlx", ""},
	}
	for _, st := range steps {
		r := sluice(t, server, "", st.args...)
		if r.code != st.code || !strings.Contains(r.stdout, st.stdout) || !strings.Contains(r.stderr, st.stderr) {
			t.Errorf("%s: sluice %s = %d\nstdout: %s\nstderr: %s\nwant %d, stdout with %q, stderr with %q",
				st.name, strings.Join(st.args, " "), r.code, r.stdout, r.stderr, st.code, st.stdout, st.stderr)
		}
	}
	if b, err := os.ReadFile(file); err != nil || !strings.Contains(string(b), `"rabbit_version"`) {
		t.Errorf("exported file: %v %s", err, b)
	}
}
