//go:build integration

package compat

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/sluicetest"
)

// suiteModule is the client release whose integration suite this runner
// runs; scripts/install-test-deps.sh caches the same version.
const suiteModule = "github.com/rabbitmq/amqp091-go@v1.16.0"

// suiteTimeout bounds the inner `go test`; against RabbitMQ the suite minus
// the skip list takes about two minutes on two cores.
const suiteTimeout = 6 * time.Minute

// minPassed guards against a run that silently ran (almost) nothing: the
// suite has over 200 tests, most of which need no broker at all.
const minPassed = 150

// skipList names the suite's tests that need something besides an AMQP
// broker, with the reason. Measured against a private RabbitMQ 3.10 node
// (scripts/rabbitmq-local.sh): with its management plugin on localhost:15672
// and rabbitmqctl, every test passes; without them, exactly these fail or skip.
var skipList = map[string]string{
	// The connection-recovery tests force-close their connection through
	// RabbitMQ's management HTTP API at the hard-coded address
	// http://localhost:15672 (GET /api/connections, DELETE
	// /api/connections/{name}, user guest/guest); a broker on another port
	// or without that API cannot be reached by them.
	"TestConnectionRecoveryAutoDeleteExchangeCascade":                  mgmt,
	"TestConnectionRecoveryAutoDeleteTopologyForgotten":                mgmt,
	"TestConnectionRecoveryCancelInterrupt":                            mgmt,
	"TestConnectionRecoveryChannelIDReservation":                       mgmt,
	"TestConnectionRecoveryConsume":                                    mgmt,
	"TestConnectionRecoveryConsumerNotForgottenAfterFailedResubscribe": mgmt,
	"TestConnectionRecoveryCustomSASLPlainAuth":                        mgmt,
	"TestConnectionRecoveryDeletedQueueSkip":                           mgmt,
	"TestConnectionRecoveryExclusiveQueue":                             mgmt,
	"TestConnectionRecoveryExhaustionDoesNotPanic":                     mgmt,
	"TestConnectionRecoveryLifeCycleNotifyStateChange":                 mgmt,
	"TestConnectionRecoveryMultiChannelTopology":                       mgmt,
	"TestConnectionRecoveryPublish":                                    mgmt,
	"TestConnectionRecoverySkipAndContinue":                            mgmt,
	"TestConnectionRecoveryTopologyAllEnabled":                         mgmt,
	"TestConnectionRecoveryTopologyDisabled":                           mgmt,
	"TestConnectionRecoveryTopologyOnlyTransient":                      mgmt,
	// Raises a memory alarm with `rabbitmqctl set_vm_memory_high_watermark`
	// (found through RABBITMQ_RABBITMQCTL_PATH); it skips itself without it.
	"TestConnection_Close_WhenMemoryAlarmIsActive": "needs rabbitmqctl to raise a memory alarm",
}

const mgmt = "needs RabbitMQ's management API on localhost:15672 to force-close connections"

// brokerURL starts Sluice for the test, or returns SLUICE_TEST_AMQP_URL when
// that names another broker to check (such as a private RabbitMQ).
func brokerURL(t *testing.T) string {
	if u := os.Getenv("SLUICE_TEST_AMQP_URL"); u != "" {
		t.Logf("running against SLUICE_TEST_AMQP_URL=%s", u)
		return u
	}
	return sluicetest.Start(t).URL()
}

func TestAMQP091GoSuite(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is not on PATH: %v", err)
	}
	src := moduleDir(t, goBin)
	checkSkipListExists(t, src)
	work := filepath.Join(t.TempDir(), "amqp091-go")
	if err := copyTree(src, work); err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
	url := brokerURL(t)

	args := []string{"test", "-tags", "integration", "-count=1", "-json",
		"-timeout", suiteTimeout.String()}
	if os.Getenv("SLUICE_COMPAT_RUN_ALL") == "" {
		args = append(args, "-skip", skipPattern())
	}
	args = append(args, ".")
	res, err := runSuite(t, goBin, work, url, args)
	if err != nil {
		t.Fatal(err)
	}
	res.report(t, url)
}

// moduleDir finds the suite's source in the module cache without touching
// the network: `make deps` (scripts/install-test-deps.sh) downloads it.
func moduleDir(t *testing.T, goBin string) string {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "mod", "download", "-json", suiteModule)
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &info); jerr != nil || info.Error != "" || info.Dir == "" {
		t.Fatalf("%s is not in the module cache (run `make deps`): %v %s", suiteModule, err, info.Error)
	}
	return info.Dir
}

// checkSkipListExists keeps the skip list honest: each name must still be a
// test of the suite, or the list is stale.
func checkSkipListExists(t *testing.T, dir string) {
	var all bytes.Buffer
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files in %s: %v", dir, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("read %s: %v", f, err)
		}
		all.Write(b)
	}
	for name := range skipList {
		if !bytes.Contains(all.Bytes(), []byte("func "+name+"(t *testing.T)")) {
			t.Errorf("skip list names %s, which the suite no longer has", name)
		}
	}
}

func skipPattern() string {
	names := make([]string, 0, len(skipList))
	for name := range skipList {
		names = append(names, regexp.QuoteMeta(name))
	}
	sort.Strings(names)
	return "^(" + strings.Join(names, "|") + ")$"
}

// copyTree copies the read-only module cache directory into a writable one.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return copyFile(path, target)
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// runSuite runs the inner `go test -json` in dir against url and collects
// its results.
func runSuite(t *testing.T, goBin, dir, url string, args []string) (*results, error) {
	ctx, cancel := context.WithTimeout(t.Context(), suiteTimeout+2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"AMQP_URL="+url,
		"GOWORK=off",
		"GOFLAGS=-mod=mod",
		"GOPROXY=off", // everything comes from the cache that `make deps` filled
		"GOTOOLCHAIN=local",
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 10 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("stdout pipe: %w", err)
	}
	start := time.Now()
	t.Logf("running %s in %s with AMQP_URL=%s", strings.Join(append([]string{"go"}, args...), " "), dir, url)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start go test: %w", err)
	}
	res, perr := parseEvents(stdout)
	werr := cmd.Wait()
	res.elapsed = time.Since(start)
	res.stderr = stderr.String()
	if perr != nil {
		return nil, fmt.Errorf("read go test -json output: %w (stderr: %s)", perr, res.stderr)
	}
	var exit *exec.ExitError
	if werr != nil && !errors.As(werr, &exit) {
		return nil, fmt.Errorf("run go test: %w (stderr: %s)", werr, res.stderr)
	}
	res.exitErr = werr
	return res, nil
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

type results struct {
	status  map[string]string   // top-level test -> run, pass, fail or skip
	output  map[string][]string // test -> its output lines
	pkgOut  []string            // output outside any test (build errors, panics, leaks)
	pkgFail bool
	exitErr error
	stderr  string
	elapsed time.Duration
}

func parseEvents(r io.Reader) (*results, error) {
	res := &results{status: map[string]string{}, output: map[string][]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			res.pkgOut = append(res.pkgOut, sc.Text()+"\n")
			continue
		}
		top, _, _ := strings.Cut(e.Test, "/")
		switch {
		case e.Action == "output" && e.Test != "":
			res.output[top] = append(res.output[top], e.Output)
		case e.Action == "output" || e.Action == "build-output":
			res.pkgOut = append(res.pkgOut, e.Output)
		case e.Test == "" && e.Action == "fail":
			res.pkgFail = true
		case e.Test != "" && e.Test == top:
			switch e.Action {
			case "run", "pass", "fail", "skip":
				res.status[top] = e.Action
			}
		}
	}
	return res, sc.Err()
}

// report prints the counts and fails t for every failure not on the skip
// list, for a package-level failure and for a run that ran too little.
func (r *results) report(t *testing.T, url string) {
	var passed, skipped, listed, failed []string
	for name, st := range r.status {
		switch {
		case st == "pass":
			passed = append(passed, name)
		case st == "skip" && skipList[name] != "":
			listed = append(listed, name)
		case st == "skip":
			skipped = append(skipped, name)
		default: // fail, or started and never finished (timeout, crash)
			failed = append(failed, name)
		}
	}
	sort.Strings(failed)
	sort.Strings(skipped)
	for _, name := range failed {
		t.Errorf("%s failed:\n%s", name, strings.Join(r.output[name], ""))
	}
	for _, name := range skipped {
		t.Logf("%s skipped itself: %s", name, lastLine(r.output[name]))
	}
	notRun := len(skipList) - len(listed)
	if os.Getenv("SLUICE_COMPAT_RUN_ALL") != "" {
		notRun = 0
	}
	summary := fmt.Sprintf("amqp091-go suite (%s) against %s in %s: %d passed, %d failed, %d skipped (%d on the skip list, %d by the suite itself)",
		suiteModule, url, r.elapsed.Round(time.Second), len(passed), len(failed),
		len(skipped)+notRun+len(listed), notRun+len(listed), len(skipped))
	t.Log(summary)
	fmt.Println("compat: " + summary)
	if r.pkgFail && len(failed) == 0 {
		t.Errorf("the suite's package failed outside any test (build error, leak check, panic):\n%s\nstderr:\n%s",
			tail(r.pkgOut, 60), r.stderr)
	}
	if r.exitErr != nil && len(failed) == 0 && !r.pkgFail {
		t.Errorf("go test exited with %v and no failed test:\n%s\nstderr:\n%s", r.exitErr, tail(r.pkgOut, 60), r.stderr)
	}
	if len(passed) < minPassed {
		t.Errorf("only %d tests passed, want at least %d: did the suite run?\n%s\nstderr:\n%s",
			len(passed), minPassed, tail(r.pkgOut, 60), r.stderr)
	}
}

func lastLine(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		if s := strings.TrimSpace(lines[i]); s != "" && !strings.HasPrefix(s, "--- SKIP") {
			return s
		}
	}
	return ""
}

func tail(lines []string, n int) string {
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}
