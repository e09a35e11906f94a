package cli

// sluice policy ls|set|delete: policies and (with --operator) operator
// policies, as RabbitMQ's; sluice definitions export|import: the
// topology as RabbitMQ's definitions file.

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"

	"github.com/sluicemq/sluice/internal/api"
)

func policyCommands() []*command {
	var (
		operator   bool
		pattern    string
		definition string
		applyTo    string
		priority   int
		file       string
		vhostOnly  bool
	)
	opFlag := func(fs *flag.FlagSet) {
		fs.BoolVar(&operator, "operator", false, "operator policies instead of policies")
	}
	return []*command{
		{
			usage: "policy ls",
			help:  "List the vhost's policies (--operator: operator policies).",
			flags: opFlag,
			run: func(e *env, _ []string) error {
				ps, err := e.client.Policies(e.ctx, e.vhost, operator)
				if err != nil {
					return err
				}
				return e.out(ps, func() {
					rows := make([][]string, 0, len(ps))
					for _, p := range ps {
						def, _ := json.Marshal(p.Definition)
						rows = append(rows, []string{p.Name, p.Pattern, p.ApplyTo, strconv.Itoa(p.Priority), truncate(string(def), 60)})
					}
					e.table([]string{"NAME", "PATTERN", "APPLY TO", "PRIORITY", "DEFINITION"}, rows)
				})
			},
		},
		{
			usage: "policy set NAME",
			help: "Set a policy; it applies at once to the queues whose names match.\n" +
				`Example: sluice policy set orders-dlx --pattern '^orders\.' --definition '{"dead-letter-exchange":"dlx","delivery-limit":5}'`,
			flags: func(fs *flag.FlagSet) {
				opFlag(fs)
				fs.StringVar(&pattern, "pattern", "", "regular expression over queue (exchange) names")
				fs.StringVar(&definition, "definition", "", "the settings, a JSON object")
				fs.StringVar(&applyTo, "apply-to", "all", "queues, exchanges or all")
				fs.IntVar(&priority, "priority", 0, "the highest-priority matching policy applies")
			},
			run: func(e *env, a []string) error {
				if len(a) != 1 {
					return usagef("want one policy name")
				}
				if pattern == "" || definition == "" {
					return usagef("--pattern and --definition are required")
				}
				var def map[string]any
				dec := json.NewDecoder(bytes.NewReader([]byte(definition)))
				dec.UseNumber()
				if err := dec.Decode(&def); err != nil {
					return usagef("--definition is not a JSON object: %v", err)
				}
				p := api.PolicyPut{Pattern: pattern, ApplyTo: applyTo, Definition: def, Priority: &priority}
				if err := e.client.PutPolicy(e.ctx, e.vhost, a[0], operator, p); err != nil {
					return err
				}
				return e.done("policy %s set", a[0])
			},
		},
		{
			usage: "policy delete NAME",
			help:  "Delete a policy (--operator: an operator policy); its queues fall back at once.",
			flags: opFlag,
			run: func(e *env, a []string) error {
				if len(a) != 1 {
					return usagef("want one policy name")
				}
				if err := e.client.DeletePolicy(e.ctx, e.vhost, a[0], operator); err != nil {
					return err
				}
				return e.done("policy %s deleted", a[0])
			},
		},
		{
			usage: "definitions export",
			help: "Write the broker's definitions (RabbitMQ's format) to --file or stdout;\n" +
				"with --vhost-only, just the vhost's.",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&file, "file", "", "write to `path` (- or empty for stdout)")
				fs.BoolVar(&vhostOnly, "vhost-only", false, "export only --vhost")
			},
			run: func(e *env, _ []string) error {
				defs, err := e.client.ExportDefinitions(e.ctx, onlyVHost(e, vhostOnly))
				if err != nil {
					return err
				}
				var pretty bytes.Buffer
				if err := json.Indent(&pretty, defs, "", "  "); err != nil {
					return fmt.Errorf("definitions: %w", err)
				}
				pretty.WriteByte('\n')
				if file == "" || file == "-" {
					_, err = e.stdout.Write(pretty.Bytes())
					return err
				}
				if err := os.WriteFile(file, pretty.Bytes(), 0o600); err != nil {
					return fmt.Errorf("write definitions: %w", err)
				}
				return e.done("definitions written to %s", file)
			},
		},
		{
			usage: "definitions import",
			help: "Import a definitions file (Sluice's or RabbitMQ's) from --file or stdin;\n" +
				"with --vhost-only, into --vhost. The file is checked whole before anything changes.",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&file, "file", "", "read from `path` (- or empty for stdin)")
				fs.BoolVar(&vhostOnly, "vhost-only", false, "import into --vhost only")
			},
			run: func(e *env, _ []string) error {
				b, err := readInput(e, file, "definitions")
				if err != nil {
					return err
				}
				if !json.Valid(b) {
					return usagef("the definitions file is not JSON")
				}
				if err := e.client.ImportDefinitions(e.ctx, onlyVHost(e, vhostOnly), b); err != nil {
					return err
				}
				return e.done("definitions imported")
			},
		},
	}
}

// onlyVHost is --vhost with --vhost-only, else "" (the whole broker).
func onlyVHost(e *env, only bool) string {
	if only {
		return e.vhost
	}
	return ""
}
