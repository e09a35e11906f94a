package sluicetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// MainWithBinary is the TestMain of a test package that starts the real
// broker as a process: it builds cmd/sluice into a temporary directory,
// points *binary at it, runs the tests, removes the directory and exits
// with the tests' code. SLUICE_TEST_BINARY, when set, names a binary to
// use instead (to compare another build, such as one from before a fix).
func MainWithBinary(m *testing.M, binary *string) {
	os.Exit(runWithBinary(m, binary))
}

func runWithBinary(m *testing.M, binary *string) int {
	if b := os.Getenv("SLUICE_TEST_BINARY"); b != "" {
		*binary = b
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "sluice-test-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	*binary = filepath.Join(dir, "sluice")
	build := exec.Command("go", "build", "-o", *binary, "github.com/sluicemq/sluice/cmd/sluice")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build sluice:", err)
		return 1
	}
	return m.Run()
}
