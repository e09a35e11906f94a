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
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/amqpserver"
	"github.com/sluicemq/sluice/internal/httpapi"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

// suiteModule is the client release whose integration suite this runner
// runs; scripts/install-test-deps.sh caches the same version.
const suiteModule = "github.com/rabbitmq/amqp091-go@v1.16.0"

// suiteTimeout bounds the inner `go test` runs (twice that with
// SLUICE_COMPAT_RUN_ALL); against RabbitMQ the suite minus the skip list
// takes about two and a half minutes on two cores, against Sluice about one.
const suiteTimeout = 6 * time.Minute

// maxRuns bounds how often the suite's binary is started again after a
// crash (see runUntilDone).
const maxRuns = 20

// minTests guards against a listing that found (almost) nothing: the suite
// has over 240 tests, fuzz seeds and examples.
const minTests = 200

// skipList names the suite's tests that need something besides an AMQP
// broker, with the reason. Measured against a private RabbitMQ 3.10 node
// (scripts/rabbitmq-local.sh): with its management plugin on localhost:15672
// and rabbitmqctl, every test passes; without them, exactly these fail or skip.
var skipList = map[string]string{
	// The connection-recovery tests force-close their connection through
	// RabbitMQ's management HTTP API at the hard-coded address
	// http://localhost:15672 (GET /api/connections, DELETE
	// /api/connections/{name}, user guest/guest). Against Sluice the runner
	// serves Sluice's own HTTP API there, so they run; they are left out
	// only when that port is taken, or against another broker without it.
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
// that names another broker to check (such as a private RabbitMQ). mgmt
// reports whether the broker's management API answers where the suite's
// connection-recovery tests look for it (http://localhost:15672).
func brokerURL(t *testing.T) (url string, mgmt bool) {
	if u := os.Getenv("SLUICE_TEST_AMQP_URL"); u != "" {
		t.Logf("running against SLUICE_TEST_AMQP_URL=%s", u)
		return u, false
	}
	// The suite runs some of its tests only when the server calls itself
	// RabbitMQ (and leaves their connections open otherwise), so this
	// broker reports that product name: those tests then check Sluice too.
	b := sluicetest.Start(t, sluicetest.WithServerConfig(func(c *amqpserver.Config) {
		c.Product = "RabbitMQ"
	}))
	return b.URL(), startManagementAPI(t, b)
}

// startManagementAPI serves Sluice's HTTP API on 127.0.0.1:15672, the
// address the suite's recovery tests use to list and force-close
// connections. It reports false (those tests are then skipped) when the
// port is taken.
func startManagementAPI(t *testing.T, b *sluicetest.Broker) bool {
	ln, err := net.Listen("tcp", "127.0.0.1:15672")
	if err != nil {
		t.Logf("127.0.0.1:15672 is taken (%v): skipping the connection-recovery tests", err)
		return false
	}
	cfg := httpapi.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := httpapi.New(cfg, b.Broker, b.Server)
	if err != nil {
		ln.Close()
		t.Fatalf("httpapi.New: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Close(ctx)
		<-served
	})
	return true
}

func TestAMQP091GoSuite(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is not on PATH: %v", err)
	}
	src := moduleDir(t, goBin)
	checkSkipListExists(t, src)
	clientOnly := clientOnlyTests(t, src)
	work := filepath.Join(t.TempDir(), "amqp091-go")
	if err := copyTree(src, work); err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
	url, mgmtAPI := brokerURL(t)
	s := &suite{goBin: goBin, dir: work, url: url, clientOnly: clientOnly}
	all := s.list(t)
	if len(all) < minTests {
		t.Fatalf("the suite lists %d tests, want at least %d", len(all), minTests)
	}
	runAll := os.Getenv("SLUICE_COMPAT_RUN_ALL") != ""
	s.deadline = time.Now().Add(suiteTimeout)
	if runAll || mgmtAPI {
		// The connection-recovery tests alone take about two minutes.
		s.deadline = s.deadline.Add(suiteTimeout)
	}
	var want []string
	for _, name := range all {
		if runAll || skipList[name] == "" || (mgmtAPI && skipList[name] == mgmt) {
			want = append(want, name)
		} else {
			s.excluded = append(s.excluded, name)
		}
	}
	s.runUntilDone(t, want)
	s.report(t, want, len(all)-len(want))
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

// testFunc matches the declaration of a top-level test, fuzz test or example.
var testFunc = regexp.MustCompile(`(?m)^func ((?:Test|Fuzz|Example)\w*)\(`)

// clientOnlyTests returns the suite's tests declared in files without the
// integration build tag: unit tests of the client against fakes, which use
// no broker.
func clientOnlyTests(t *testing.T, dir string) map[string]bool {
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil {
		t.Fatalf("glob %s: %v", dir, err)
	}
	only := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("read %s: %v", f, err)
		}
		if bytes.Contains(b, []byte("//go:build integration")) {
			continue
		}
		for _, m := range testFunc.FindAllSubmatch(b, -1) {
			only[string(m[1])] = true
		}
	}
	return only
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

// suite runs the copied module's tests against one broker and gathers their
// final results across runs.
type suite struct {
	goBin, dir, url string
	deadline        time.Time // the whole suite's budget, over all runs

	status  map[string]string   // top-level test -> pass, fail or skip
	output  map[string][]string // test -> its output lines, from the run that finished it
	unsound []string            // problems outside any test (leak check, build, crash)
	runs    int

	clientOnly map[string]bool // tests that use no broker (see clientOnlyTests)
	excluded   []string        // skip-list tests this run leaves out
	retried    map[string]bool // client-only tests run a second time after failing
}

// testName matches the names `go test -list` prints for what `go test` runs.
var testName = regexp.MustCompile(`^(Test|Fuzz|Example)\w*$`)

// list returns the names of the suite's top-level tests, fuzz seeds and
// examples.
func (s *suite) list(t *testing.T) []string {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := s.command(ctx, "test", "-tags", "integration", "-list", ".", ".")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go test -list in %s: %v\n%s", s.dir, err, out)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if line = strings.TrimSpace(line); testName.MatchString(line) {
			names = append(names, line)
		}
	}
	return names
}

func (s *suite) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, s.goBin, args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(),
		"AMQP_URL="+s.url,
		"GOWORK=off",
		"GOFLAGS=-mod=mod",
		"GOPROXY=off", // everything comes from the cache that `make deps` filled
		"GOTOOLCHAIN=local",
	)
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// runUntilDone runs the tests in want until each has a result. A panic in
// one test kills the suite's binary and with it the tests running beside it
// or not yet started; those run again in a fresh binary, without the tests
// that already have a result. It stops when a run makes no progress or the
// budget is spent.
func (s *suite) runUntilDone(t *testing.T, want []string) {
	s.status = map[string]string{}
	s.output = map[string][]string{}
	s.retried = map[string]bool{}
	for len(s.pending(want)) > 0 && time.Until(s.deadline) > 10*time.Second && s.runs < maxRuns {
		pending := s.pending(want)
		if s.runs > 0 {
			t.Logf("run %d: %d tests have no result yet (the binary died, or a retry); running them", s.runs+1, len(pending))
		}
		res, err := s.runOnce(t)
		if err != nil {
			t.Fatal(err)
		}
		s.runs++
		progress := 0
		for name, st := range res.status {
			if st == "pass" || st == "fail" || st == "skip" {
				s.status[name] = st
				s.output[name] = res.output[name]
				progress++
			}
			if st == "fail" && s.clientOnly[name] && !s.retried[name] {
				// A client-only test with a tight timing check, failing under
				// load; it tells nothing about the broker, so it gets one more try.
				t.Logf("%s (uses no broker) failed; trying it once more:\n%s", name, strings.Join(res.output[name], ""))
				s.retried[name] = true
				delete(s.status, name)
			}
		}
		failed := false
		for _, st := range res.status {
			failed = failed || st != "pass" && st != "skip"
		}
		switch extra := packageProblems(res.pkgOut); {
		case res.exitErr != nil && extra != "":
			// A failure outside any test (a leak check in TestMain, a panic
			// after the tests) counts even when a test failed beside it:
			// that test may pass on its retry.
			s.unsound = append(s.unsound, fmt.Sprintf(
				"run %d: go test exited with %v and reported, outside any test:\n%s\nstderr:\n%s",
				s.runs, res.exitErr, extra, res.stderr))
		case res.exitErr != nil && !failed && len(s.pending(want)) == 0:
			s.unsound = append(s.unsound, fmt.Sprintf(
				"run %d: go test exited with %v and no failed test (leak check, build error?):\n%s\nstderr:\n%s",
				s.runs, res.exitErr, tail(res.pkgOut, 60), res.stderr))
		}
		if progress == 0 {
			s.unsound = append(s.unsound, fmt.Sprintf("run %d finished no test:\n%s\nstderr:\n%s",
				s.runs, tail(res.pkgOut, 60), res.stderr))
			return
		}
	}
}

// pending returns the tests in want without a result yet.
func (s *suite) pending(want []string) []string {
	var p []string
	for _, name := range want {
		if _, ok := s.status[name]; !ok {
			p = append(p, name)
		}
	}
	return p
}

// runOnce runs the inner `go test -json`, skipping the excluded tests and
// every test that already has a result.
func (s *suite) runOnce(t *testing.T) (*results, error) {
	budget := time.Until(s.deadline).Round(time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), budget+time.Minute)
	defer cancel()
	skip := append(make([]string, 0, len(s.excluded)+len(s.status)), s.excluded...)
	for name := range s.status {
		skip = append(skip, name)
	}
	args := []string{"test", "-tags", "integration", "-count=1", "-json", "-timeout", budget.String()}
	if len(skip) > 0 {
		args = append(args, "-skip", namesPattern(skip))
	}
	args = append(args, ".")
	cmd := s.command(ctx, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("stdout pipe: %w", err)
	}
	if s.runs == 0 {
		t.Logf("running go test -tags integration -count=1 -json -timeout %s -skip <%d names> . in %s with AMQP_URL=%s",
			budget, len(skip), s.dir, s.url)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start go test: %w", err)
	}
	res, perr := parseEvents(stdout)
	werr := cmd.Wait()
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

func namesPattern(names []string) string {
	quoted := make([]string, len(names))
	for i, name := range names {
		quoted[i] = regexp.QuoteMeta(name)
	}
	sort.Strings(quoted)
	return "^(" + strings.Join(quoted, "|") + ")$"
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action string
	Test   string
	Output string
}

// results is what one run of the inner `go test -json` reported.
type results struct {
	status  map[string]string   // top-level test -> its last action
	output  map[string][]string // test -> its output lines
	pkgOut  []string            // output outside any test (build errors, panics, leaks)
	exitErr error
	stderr  string
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
		case e.Test != "" && e.Test == top:
			res.status[top] = e.Action
		}
	}
	return res, sc.Err()
}

// report prints the counts and fails t for every failure not on the skip
// list, every test left without a result and every problem outside a test.
func (s *suite) report(t *testing.T, want []string, listed int) {
	var passed, skipped, failed []string
	for _, name := range want {
		switch s.status[name] {
		case "pass":
			passed = append(passed, name)
		case "skip":
			skipped = append(skipped, name)
		case "fail":
			failed = append(failed, name)
			t.Errorf("%s failed:\n%s", name, strings.Join(s.output[name], ""))
		default:
			failed = append(failed, name)
			t.Errorf("%s did not finish (the suite's binary died or ran out of time)", name)
		}
	}
	for _, name := range skipped {
		t.Logf("%s skipped itself: %s", name, lastLine(s.output[name]))
	}
	for _, u := range s.unsound {
		t.Error(u)
	}
	summary := fmt.Sprintf("amqp091-go suite (%s) against %s in %d run(s): %d passed, %d failed, %d skipped (%d on the skip list, %d by the suite itself)",
		suiteModule, s.url, s.runs, len(passed), len(failed), len(skipped)+listed, listed, len(skipped))
	t.Log(summary)
	fmt.Println("compat: " + summary)
}

func lastLine(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" && !strings.HasPrefix(l, "--- SKIP") {
			return l
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

// routinePackageLine matches what go test prints outside any test in an
// ordinary run: the verdicts, the exit status, coverage and timing lines.
var routinePackageLine = regexp.MustCompile(`^(PASS|FAIL|ok|FAIL\t.*|ok  \t.*|exit status \d+|coverage: .*|testing: warning: no tests to run|\?\s.*)$`)

// packageProblems returns the package-level output lines of a run that are
// not routine (a leak report, a panic's trace), or "".
func packageProblems(pkgOut []string) string {
	var b strings.Builder
	for _, chunk := range pkgOut {
		for _, line := range strings.Split(chunk, "\n") {
			if l := strings.TrimRight(line, "\r "); l != "" && !routinePackageLine.MatchString(l) {
				b.WriteString(l + "\n")
			}
		}
	}
	return b.String()
}
