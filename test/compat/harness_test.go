//go:build integration

package compat

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// fakeSuite writes a module whose tests pass and whose TestMain then does
// what tail says, and returns a suite over it.
func fakeSuite(t *testing.T, tail string, clientOnly map[string]bool) *suite {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is not on PATH: %v", err)
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module fake\n\ngo 1.21\n",
		"fake_test.go": `package fake

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

var _ = fmt.Sprint

// marker exists after the first run.
var marker = filepath.Join(os.Getenv("FAKE_DIR"), "ran")

func TestA(t *testing.T) {}

// TestFlaky fails on the first run only (a client-only timing test).
func TestFlaky(t *testing.T) {
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("first run")
	}
}

func TestMain(m *testing.M) {
	_, statErr := os.Stat(marker)
	first := statErr != nil
	code := m.Run()
	os.WriteFile(marker, nil, 0o644)
	_ = first
	` + tail + `
	os.Exit(code)
}
`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("FAKE_DIR", dir)
	return &suite{goBin: goBin, dir: dir, url: "amqp://unused/", clientOnly: clientOnly,
		deadline: time.Now().Add(2 * time.Minute)}
}

// TestHarnessFailsOnPackageLevelFailure: the suite runner fails on what
// goes wrong outside any test, not only on failed tests.
func TestHarnessFailsOnPackageLevelFailure(t *testing.T) {
	tests := []struct {
		name string
		tail string
	}{
		{"leak check after passing tests", `if code == 0 { fmt.Println("goleak: Errors on successful test run: found unexpected goroutines:"); code = 1 }`},
		{"panic after the tests", `panic("after the tests")`},
		// The leak is reported in the run where a client-only test failed;
		// that test passes on its retry, in a run without the leak.
		{"leak beside a retried failure", `if first { fmt.Println("found unexpected goroutines: [Goroutine 7 in state chan receive]"); code = 1 }`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := fakeSuite(t, tt.tail, map[string]bool{"TestFlaky": true})
			s.runUntilDone(t, []string{"TestA", "TestFlaky"})
			if len(s.unsound) == 0 {
				t.Fatalf("no problem reported; results %v", s.status)
			}
			t.Logf("reported: %s", s.unsound[0])
		})
	}
}
