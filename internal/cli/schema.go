package cli

// sluice schema put|get|ls|delete: the JSON Schemas that queues and
// exchanges name in their x-schema argument.

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

func schemaCommands() []*command {
	var file string
	return []*command{
		{
			usage: "schema ls",
			help:  "List the vhost's JSON Schemas and the queues and exchanges that use them.",
			run: func(e *env, _ []string) error {
				ss, err := e.client.Schemas(e.ctx, e.vhost)
				if err != nil {
					return err
				}
				return e.out(ss, func() {
					rows := make([][]string, 0, len(ss))
					for _, s := range ss {
						rows = append(rows, []string{s.Name, strings.Join(s.UsedBy, ", "), truncate(string(s.Schema), 60)})
					}
					e.table([]string{"NAME", "USED BY", "SCHEMA"}, rows)
				})
			},
		},
		{
			usage: "schema get NAME",
			help:  "Print a JSON Schema (with --json: also its users).",
			run: func(e *env, a []string) error {
				if len(a) != 1 {
					return usagef("want one schema name")
				}
				s, err := e.client.Schema(e.ctx, e.vhost, a[0])
				if err != nil {
					return err
				}
				if e.json {
					return e.printJSON(s)
				}
				var pretty bytes.Buffer
				if err := json.Indent(&pretty, s.Schema, "", "  "); err != nil {
					return fmt.Errorf("schema %s: %w", a[0], err)
				}
				fmt.Fprintln(e.stdout, pretty.String())
				return nil
			},
		},
		{
			usage: "schema put NAME",
			help: "Register or replace a JSON Schema. The document comes from --file or stdin.\n" +
				"Example: sluice schema put order --file order.schema.json",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&file, "file", "", "read the schema from `path` (- or empty for stdin)")
			},
			run: func(e *env, a []string) error {
				if len(a) != 1 {
					return usagef("want one schema name")
				}
				doc, err := readSchema(e, file)
				if err != nil {
					return err
				}
				if err := e.client.PutSchema(e.ctx, e.vhost, a[0], doc); err != nil {
					return err
				}
				return e.done("schema %s saved", a[0])
			},
		},
		{
			usage: "schema delete NAME",
			help:  "Delete a JSON Schema; refused (exit 5) while a queue or exchange uses it.",
			run: func(e *env, a []string) error {
				if len(a) != 1 {
					return usagef("want one schema name")
				}
				if err := e.client.DeleteSchema(e.ctx, e.vhost, a[0]); err != nil {
					return err
				}
				return e.done("schema %s deleted", a[0])
			},
		},
	}
}

// readSchema reads a schema document and checks it is JSON before it
// goes out, so a typo is a usage error with the place it went wrong.
func readSchema(e *env, file string) (json.RawMessage, error) {
	doc, err := readInput(e, file, "schema")
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(doc)) == 0 {
		return nil, usagef("empty schema; give --file or pipe the document in")
	}
	if !json.Valid(doc) {
		var v any
		err := json.Unmarshal(doc, &v)
		return nil, usagef("the schema is not JSON: %v", err)
	}
	return doc, nil
}

// readInput reads file, or stdin when file is "" or "-".
func readInput(e *env, file, what string) ([]byte, error) {
	var (
		b   []byte
		err error
	)
	if file == "" || file == "-" {
		b, err = io.ReadAll(e.stdin)
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	return b, nil
}
