package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The Makefile's release flags make a static binary with the version
// stamped: `make release-probe` builds a program importing net and
// os/user (which link libc under cgo) exactly as `make release` builds
// sluice.
func TestReleaseBuildIsStatic(t *testing.T) {
	out := filepath.Join(t.TempDir(), "probe")
	build := exec.Command("make", "-s", "-C", "../..", "release-probe", "PROBE_OUT="+out, "VERSION=9.9.9-test")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make release-probe: %v\n%s", err, b)
	}
	if err := static(out); err != nil {
		t.Fatal(err)
	}
	got, err := exec.Command(out).Output()
	if err != nil {
		t.Fatal(err)
	}
	if v := strings.TrimSpace(string(got)); v != "9.9.9-test" {
		t.Errorf("version %q, want the stamped 9.9.9-test", v)
	}
}

// A dynamically linked binary is caught: the test's own binary, built by
// go test with cgo where the machine has a C compiler, or any system
// program.
func TestStaticCatchesDynamicBinaries(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	sh, _ = filepath.EvalSymlinks(sh)
	if err := static(sh); err == nil {
		t.Skipf("%s is static on this machine", sh)
	} else if !strings.Contains(err.Error(), "dynamically linked") && !strings.Contains(err.Error(), "shared libraries") {
		t.Errorf("static(%s) = %v", sh, err)
	}
}
