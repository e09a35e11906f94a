// Command checkstatic fails when an ELF file it is given is not a static
// executable: one that names a program interpreter (the dynamic loader)
// or needs shared libraries. `make release` runs it over its binaries:
// the release build must run in a scratch container image.
package main

import (
	"debug/elf"
	"fmt"
	"os"
	"strings"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: checkstatic FILE...")
		os.Exit(2)
	}
	failed := false
	for _, path := range os.Args[1:] {
		if err := static(path); err != nil {
			fmt.Fprintf(os.Stderr, "checkstatic: %v\n", err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}

// static reports why the ELF file at path is not statically linked.
func static(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s: has a program interpreter: it is dynamically linked", path)
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return fmt.Errorf("%s: read dynamic section: %w", path, err)
	}
	if len(libs) > 0 {
		return fmt.Errorf("%s: needs shared libraries %s", path, strings.Join(libs, ", "))
	}
	return nil
}
