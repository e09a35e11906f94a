//go:build integration

package crosslang

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/sluicetest"
)

// scriptTimeout bounds one smoke script; the scripts bound themselves at
// smokeTimeout and this is the backstop should that fail.
const (
	smokeTimeout  = 60 * time.Second
	scriptTimeout = smokeTimeout + 30*time.Second
)

// brokerURL starts Sluice for the test, or returns SLUICE_TEST_AMQP_URL when
// that names another broker to check (such as a private RabbitMQ).
func brokerURL(t *testing.T) string {
	if u := os.Getenv("SLUICE_TEST_AMQP_URL"); u != "" {
		t.Logf("running against SLUICE_TEST_AMQP_URL=%s", u)
		return u
	}
	return sluicetest.Start(t).URL()
}

// missing skips the test outside CI and fails it in CI, where every tool the
// tier needs must have been installed by `make deps`.
func missing(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI is set, so this tier must run; `make deps` installs it)", what)
	}
	t.Skipf("%s; skipping (run `make deps` to install it)", what)
}

// python returns an interpreter that can import pika. Debian's python3-pika
// is installed for /usr/bin/python3, which may differ from the python3 first
// on PATH (pyenv and the like), so that one is tried first.
func python(t *testing.T) string {
	t.Helper()
	var candidates []string
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		candidates = append(candidates, "/usr/bin/python3")
	}
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	if len(candidates) == 0 {
		missing(t, "python3 is not installed")
	}
	for _, p := range candidates {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		err := exec.CommandContext(ctx, p, "-c", "import pika").Run()
		cancel()
		if err == nil {
			return p
		}
	}
	missing(t, "no python3 on this machine can import pika (Debian package python3-pika)")
	return ""
}

// node returns the node binary, with amqplib installed beside the script.
func node(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("node")
	if err != nil {
		missing(t, "node is not installed")
	}
	if _, err := os.Stat(filepath.Join("node_modules", "amqplib", "package.json")); err != nil {
		missing(t, "amqplib is not installed in test/crosslang/node_modules (npm ci)")
	}
	return p
}

func TestSmokeScripts(t *testing.T) {
	url := brokerURL(t)
	tests := []struct {
		name   string
		interp func(*testing.T) string
		script string
	}{
		{name: "python-pika", interp: python, script: "smoke.py"},
		{name: "python-pika-prefetch", interp: python, script: "prefetch.py"},
		{name: "node-amqplib", interp: node, script: "smoke.js"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			interp := tt.interp(t)
			out, err := runScript(t, url, interp, tt.script)
			t.Logf("%s %s:\n%s", interp, tt.script, out)
			if err != nil {
				t.Fatalf("%s against %s: %v", tt.script, url, err)
			}
			pass := tt.script + ": PASS"
			if !strings.Contains(out, "\n"+pass+"\n") && !strings.HasPrefix(out, pass+"\n") {
				t.Fatalf("%s exited 0 without printing %q", tt.script, pass)
			}
		})
	}
}

// runScript runs one smoke script with AMQP_URL set and returns its combined
// output.
func runScript(t *testing.T, url, interp, script string) (string, error) {
	return runScriptEnv(t, interp, script, "AMQP_URL="+url)
}

// runScriptEnv runs one script with env added to the environment.
func runScriptEnv(t *testing.T, interp, script string, env ...string) (string, error) {
	ctx, cancel := context.WithTimeout(t.Context(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, interp, script)
	cmd.Env = append(os.Environ(),
		"SMOKE_TIMEOUT="+strconv.Itoa(int(smokeTimeout/time.Second)),
		"PYTHONDONTWRITEBYTECODE=1",
	)
	cmd.Env = append(cmd.Env, env...)
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	return buf.String(), err
}
