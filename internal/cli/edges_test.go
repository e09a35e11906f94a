package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicemq/sluice/internal/broker"
	"github.com/sluicemq/sluice/internal/listen"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

// call runs the CLI with args exactly as given (no --server added).
func call(args ...string) result {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return result{code, out.String(), errb.String()}
}

func TestCommandLineRoughEdges(t *testing.T) {
	server, _ := startServer(t)
	hostPort := strings.TrimPrefix(server, "http://")
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"--server before the command", []string{"--server", server, "queue", "ls"}, 0, "NAME", ""},
		{"--server between group and sub", []string{"queue", "--server=" + server, "declare", "jitter", "--arg", "x-retry-backoff=1s", "--arg", "x-retry-jitter=0.2"}, 0, "declared", ""},
		{"--server without a scheme", []string{"queue", "ls", "--server", hostPort}, 0, "jitter", ""},
		{"--json before the command", []string{"--json", "--server", server, "queue", "ls"}, 0, `"name": "jitter"`, ""},
		{"group --help", []string{"queue", "--help"}, 0, "queue declare", ""},
		{"group -h", []string{"dlq", "-h"}, 0, "dlq redrive", ""},
		{"command typo", []string{"queu", "ls"}, ExitUsage, "", "did you mean: sluice queue?"},
		{"subcommand typo", []string{"queue", "lss"}, ExitUsage, "", "did you mean: sluice queue ls?"},
		{"flag typo", []string{"queue", "declare", "x", "--durabel", "--server", server}, ExitUsage, "", "did you mean --durable?"},
		{"no suggestion for nonsense", []string{"zzzzzzzz"}, ExitUsage, "", "unknown command"},
		{"health", []string{"health", "--server", server}, 0, "health check virtual-hosts: ok", ""},
		{"health of a missing listener", []string{"health", "port-listener/1", "--server", server}, ExitFailure, "", "No active listener"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := call(tc.args...)
			if r.code != tc.code || !strings.Contains(r.stdout, tc.stdout) || !strings.Contains(r.stderr, tc.stderr) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s", r.code, tc.code, r.stdout, r.stderr)
			}
		})
	}
}

func TestTypedArguments(t *testing.T) {
	for in, want := range map[string]any{"5": int64(5), "-3": int64(-3), "0.2": 0.2, "1e3": 1000.0, "true": true, "false": false,
		"300ms,5s": "300ms,5s", "abc": "abc"} {
		if got := typed(in); got != want {
			t.Errorf("typed(%q) = %#v, want %#v", in, got, want)
		}
	}
}

func TestServerURL(t *testing.T) {
	for in, want := range map[string]string{"h:15672": "http://h:15672", "https://h:15671": "https://h:15671", "http://h": "http://h"} {
		if got := serverURL(in); got != want {
			t.Errorf("serverURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// The CLI speaks https: --tls-ca trusts the server's CA, --insecure
// skips verification, neither fails.
func TestCLIOverHTTPS(t *testing.T) {
	ca := sluicetest.NewCA(t, "cli CA")
	cert, key := ca.Server(t)
	certs, err := listen.LoadCerts(listen.TLSConfig{CertFile: cert, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	url, _ := startServerWith(t, func(ln net.Listener) net.Listener { return tls.NewListener(ln, certs.ServerConfig()) })
	if r := call("queue", "ls", "--server", url, "--tls-ca", ca.CertFile); r.code != 0 {
		t.Errorf("with --tls-ca: %d %s", r.code, r.stderr)
	}
	if r := call("--insecure", "queue", "ls", "--server", url); r.code != 0 {
		t.Errorf("with --insecure: %d %s", r.code, r.stderr)
	}
	if r := call("queue", "ls", "--server", url); r.code != ExitUnreachable || !strings.Contains(r.stderr, "certificate") {
		t.Errorf("without a CA: %d %s", r.code, r.stderr)
	}
}

func TestCompletionScripts(t *testing.T) {
	r := call("completion", "bash")
	if r.code != 0 {
		t.Fatalf("completion bash: %d %s", r.code, r.stderr)
	}
	script := filepath.Join(t.TempDir(), "sluice.bash")
	if err := os.WriteFile(script, []byte(r.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	complete := func(words ...string) string {
		t.Helper()
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, "'"+w+"'")
		}
		prog := "source " + script + "; COMP_WORDS=(" + strings.Join(quoted, " ") + "); COMP_CWORD=" +
			string(rune('0'+len(words)-1)) + `; _sluice; echo "${COMPREPLY[*]}"`
		out, err := exec.Command("bash", "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"sluice", "qu"}, "queue"},
		{[]string{"sluice", "queue", "de"}, "declare delete"},
		{[]string{"sluice", "queue", "declare", "--dur"}, "--durable"},
		{[]string{"sluice", "bind", "ex", "q", "--ke"}, "--key"},
		{[]string{"sluice", "dlq", "redrive", "--ra"}, "--rate"},
	} {
		if got := complete(tc.words...); got != tc.want {
			t.Errorf("complete %q = %q, want %q", tc.words, got, tc.want)
		}
	}
	if r := call("completion", "zsh"); r.code != 0 || !strings.Contains(r.stdout, "compdef _sluice sluice") {
		t.Errorf("completion zsh: %d %s", r.code, r.stderr)
	}
	if zsh, err := exec.LookPath("zsh"); err == nil {
		zr := call("completion", "zsh")
		f := filepath.Join(t.TempDir(), "_sluice")
		if err := os.WriteFile(f, []byte(zr.stdout), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(zsh, "-n", f).CombinedOutput(); err != nil {
			t.Errorf("zsh -n: %v\n%s", err, out)
		}
	}
	if r := call("completion", "fish"); r.code != ExitUsage {
		t.Errorf("completion fish: %d, want %d", r.code, ExitUsage)
	}
}

func TestLimitsCommands(t *testing.T) {
	server, sb := startServer(t)
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
	}{
		{[]string{"limits", "set", "max-connections", "3", "--for-user", "guest"}, 0, "limit max-connections of user guest set to 3"},
		{[]string{"limits", "set", "max-queues", "10"}, 0, "limit max-queues of vhost / set to 10"},
		{[]string{"limits", "ls", "--for-user", "guest"}, 0, "max-connections"},
		{[]string{"limits", "ls", "--json"}, 0, `"max-queues": 10`},
		{[]string{"limits", "set", "max-bananas", "1"}, ExitUsage, ""},
		{[]string{"limits", "set", "max-queues", "lots"}, ExitUsage, ""},
		{[]string{"limits", "delete", "max-queues"}, 0, "cleared"},
		{[]string{"limits", "delete", "max-queues"}, ExitNotFound, ""},
	} {
		if r := sluice(t, server, "", tc.args...); r.code != tc.code || !strings.Contains(r.stdout, tc.stdout) {
			t.Errorf("%q: exit %d (want %d)\nstdout: %s\nstderr: %s", tc.args, r.code, tc.code, r.stdout, r.stderr)
		}
	}
	if ls := sb.Broker.LimitsOf(broker.UserLimit, "guest"); len(ls) != 1 || ls[0].Values["max-connections"] != 3 {
		t.Errorf("guest's limits in the broker: %+v", ls)
	}
}
