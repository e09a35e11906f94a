// Package arrows keeps the dependency arrows of the house true: data flows
// socket → amqp → amqpserver → broker → store, httpapi is a second front
// door onto the broker, the dead-letter workflow sits between httpapi and
// broker, and the CLI talks to the broker only through the API's client.
// The test reads the import graph with `go list` and fails when a package
// imports one it must not.
package arrows

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/sluicemq/sluice/"

type pkg struct {
	ImportPath string
	Imports    []string
}

// listPackages returns the repository's packages (tests excluded) with
// their direct imports, paths relative to the module.
func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports", module+"...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("go list output: %v", err)
		}
		p.ImportPath = strings.TrimPrefix(p.ImportPath, module)
		for i, imp := range p.Imports {
			p.Imports[i] = strings.TrimPrefix(imp, module)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages", len(pkgs))
	}
	return pkgs
}

// under reports whether path is dir or inside it.
func under(path, dir string) bool { return path == dir || strings.HasPrefix(path, dir+"/") }

// rule forbids the packages under from to import any package under the
// listed ones (a name without a slash is a standard library package).
type rule struct {
	from   string
	not    []string
	reason string
}

var frontDoors = []string{"internal/amqp", "internal/amqpserver", "internal/httpapi", "internal/cli",
	"internal/dlq", "internal/console", "internal/api", "internal/bench"}

var rules = []rule{
	{"internal/message", []string{"internal"}, "message is a leaf: properties and field tables only"},
	{"internal/amqp", []string{"internal/amqpserver", "internal/broker", "internal/store", "internal/httpapi", "net"},
		"the codec knows no sockets and no broker"},
	{"internal/store", []string{"internal/broker", "internal/amqp", "internal/amqpserver", "internal/httpapi",
		"internal/message", "internal/access", "internal/dlq", "internal/records"}, "the store has its own vocabulary, never broker types"},
	{"internal/broker", append(frontDoors, "net", "net/http"), "the messaging domain knows nothing of sockets, HTTP or the workflow above it"},
	{"internal/broker", []string{"internal/cluster"}, "the broker sees the cluster through its Cluster interface and the store; cmd/sluice wires them"},
	{"internal/cluster", append(frontDoors, "internal/broker"), "the cluster replicates store writes; it never sees broker types"},
	{"internal/records", append(frontDoors, "internal/broker", "internal/access", "internal/cluster", "net", "net/http", "os"),
		"records are pure encodings of message and store types: the broker calls them, they call nothing back"},
	{"internal/access", append(frontDoors, "internal/broker", "internal/store", "internal/message", "net/http"),
		"access is used by both front doors and the broker: rules over names and addresses, no HTTP, no storage"},
	{"internal/amqpserver", []string{"internal/httpapi", "internal/cli", "internal/dlq", "internal/console", "internal/api"},
		"the AMQP front door does not reach into the HTTP one"},
	{"internal/httpapi", []string{"internal/amqp", "internal/amqpserver", "internal/cli", "internal/store"},
		"the HTTP front door talks to the broker, not to the AMQP server or the store"},
	{"internal/dlq", []string{"internal/httpapi", "internal/amqp", "internal/amqpserver", "internal/cli", "internal/store",
		"internal/records", "net", "net/http"}, "the dead-letter workflow sits between httpapi and broker: no HTTP, no store or encodings of its own"},
	{"internal/cli", []string{"internal/broker", "internal/store", "internal/httpapi", "internal/amqpserver",
		"internal/amqp", "internal/dlq", "internal/access"}, "the CLI is a client of the API only"},
	{"internal/api", []string{"internal/broker", "internal/store", "internal/httpapi", "internal/amqpserver", "internal/cli"},
		"the API's types and client stand alone"},
}

// violations lists the imports of pkgs that break a rule.
func violations(pkgs []pkg) []string {
	var out []string
	for _, p := range pkgs {
		for _, r := range rules {
			if !under(p.ImportPath, r.from) {
				continue
			}
			for _, imp := range p.Imports {
				for _, bad := range r.not {
					if under(imp, bad) && !under(imp, r.from) {
						out = append(out, p.ImportPath+" imports "+imp+": "+r.reason)
					}
				}
			}
		}
		if !under(p.ImportPath, "internal/sluicetest") && slices.Contains(p.Imports, "internal/sluicetest") {
			out = append(out, p.ImportPath+" imports internal/sluicetest outside tests")
		}
	}
	return out
}

func TestDependencyArrows(t *testing.T) {
	for _, v := range violations(listPackages(t)) {
		t.Error(v)
	}
}

// TestRulesCatchWrongArrows: the check fails on arrows that point the
// wrong way.
func TestRulesCatchWrongArrows(t *testing.T) {
	for _, bad := range []pkg{
		{ImportPath: "internal/broker", Imports: []string{"internal/amqp"}},
		{ImportPath: "internal/broker", Imports: []string{"net/http"}},
		{ImportPath: "internal/broker", Imports: []string{"internal/dlq"}},
		{ImportPath: "internal/dlq", Imports: []string{"internal/httpapi"}},
		{ImportPath: "internal/dlq", Imports: []string{"internal/store"}},
		{ImportPath: "internal/dlq", Imports: []string{"internal/records"}},
		{ImportPath: "internal/cli", Imports: []string{"internal/broker"}},
		{ImportPath: "internal/store/pebblestore", Imports: []string{"internal/broker"}},
		{ImportPath: "internal/httpapi", Imports: []string{"internal/sluicetest"}},
		{ImportPath: "internal/access", Imports: []string{"internal/broker"}},
		{ImportPath: "internal/access", Imports: []string{"net/http"}},
		{ImportPath: "internal/records", Imports: []string{"internal/broker"}},
		{ImportPath: "internal/records", Imports: []string{"internal/httpapi"}},
		{ImportPath: "internal/store/pebblestore", Imports: []string{"internal/records"}},
	} {
		if len(violations([]pkg{bad})) == 0 {
			t.Errorf("%s → %v passed the check", bad.ImportPath, bad.Imports)
		}
	}
	if v := violations([]pkg{{ImportPath: "internal/broker", Imports: []string{"internal/store", "internal/message", "internal/access", "internal/records"}},
		{ImportPath: "internal/records", Imports: []string{"internal/store", "internal/message"}},
		{ImportPath: "internal/httpapi", Imports: []string{"internal/access", "internal/broker", "internal/dlq"}},
		{ImportPath: "internal/dlq", Imports: []string{"internal/access", "internal/broker", "internal/message", "internal/api"}},
		{ImportPath: "internal/amqpserver", Imports: []string{"internal/access", "internal/broker"}}}); len(v) > 0 {
		t.Errorf("allowed arrows refused: %v", v)
	}
}
