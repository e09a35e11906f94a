package httpapi_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestOpenAPICoversRoutes: every route the server registers is described
// in docs/openapi.yaml with its method.
func TestOpenAPICoversRoutes(t *testing.T) {
	var src []byte
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src = append(src, b...)
	}
	doc, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	spec := string(doc)
	routes := regexp.MustCompile(`s\.route(?:Sized)?\("(\w+) (/api[^"]*)"`).FindAllStringSubmatch(string(src), -1)
	if len(routes) < 40 {
		t.Fatalf("found %d routes in the sources", len(routes))
	}
	for _, r := range routes {
		method, path := strings.ToLower(r[1]), r[2]
		at := strings.Index(spec, "\n  "+path+":\n")
		if at < 0 {
			t.Errorf("openapi.yaml lacks path %s", path)
			continue
		}
		rest := spec[at+1:]
		if next := regexp.MustCompile(`\n  /`).FindStringIndex(rest); next != nil {
			rest = rest[:next[0]]
		}
		if !strings.Contains(rest, "\n    "+method+":\n") {
			t.Errorf("openapi.yaml lacks %s %s", r[1], path)
		}
	}
}
