package cli

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuiltBinary builds the CLI and runs it as a user would: exit codes,
// stdout and stderr of a real process, env configuration.
func TestBuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := filepath.Join(t.TempDir(), "sluice")
	build := exec.Command("go", "build", "-o", bin, "./_climain")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	server, _ := startServer(t)
	tests := []struct {
		args   []string
		stdin  string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"queue", "declare", "jobs"}, "", 0, "declared", ""},
		{[]string{"publish", "--routing-key", "jobs"}, "from stdin", 0, "published 10 bytes", ""},
		{[]string{"queue", "ls", "--json"}, "", 0, `"messages": 1`, ""},
		{[]string{"consume", "jobs"}, "", 0, "from stdin", ""},
		{[]string{"queue", "purge", "missing"}, "", ExitNotFound, "", "no queue 'missing'"},
		{[]string{"queue", "ls", "--password", "x"}, "", ExitAccess, "", "invalid credentials"},
		{[]string{"nope"}, "", ExitUsage, "", "unknown command"},
		{[]string{"--help"}, "", 0, "dlq ls|show|edit", ""},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cmd := exec.Command(bin, tc.args...)
			cmd.Env = append(cmd.Environ(), "SLUICE_SERVER="+server, "SLUICE_USER=guest", "SLUICE_PASSWORD=guest")
			cmd.Stdin = strings.NewReader(tc.stdin)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errb.String(), tc.stderr) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, tc.code, out.String(), errb.String())
			}
		})
	}
}
