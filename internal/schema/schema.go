// Package schema compiles JSON Schemas and validates message bodies against
// them, for the broker's x-schema argument. It wraps
// github.com/santhosh-tekuri/jsonschema/v6 and turns its nested validation
// errors into a flat, sorted list of {JSON pointer, message}.
//
// Schemas are self-contained: a $ref may point inside the document or at
// the JSON Schema meta-schemas, never at a file or a URL (the broker does
// not fetch anything). Documents without $schema are read as draft
// 2020-12, and "format" is asserted (an "email" that is not an email is an
// error), which is what people who write a format expect of a broker.
//
// Nothing here starts goroutines. A compiled *Schema is immutable and safe
// for concurrent use; a *Cache is safe for concurrent use; a *Doc is
// immutable once parsed.
package schema

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"mime"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// MaxErrors bounds the errors Check reports for one document.
const MaxErrors = 20

// Error is one reason a document does not match a schema: where (a JSON
// pointer into the document, "" for the whole document) and why.
type Error struct {
	Pointer string `json:"pointer"`
	Message string `json:"message"`
}

func (e Error) String() string {
	if e.Pointer == "" {
		return e.Message
	}
	return e.Pointer + ": " + e.Message
}

// Schema is a compiled JSON Schema.
type Schema struct {
	sch     *jsonschema.Schema
	printer *message.Printer
	digest  [sha256.Size]byte
}

// Compile compiles a schema document (JSON text). The error carries the
// compiler's message: what is wrong and where in the schema.
func Compile(doc []byte) (*Schema, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("schema is not JSON: %w", err)
	}
	if _, ok := v.(map[string]any); !ok {
		if _, isBool := v.(bool); !isBool {
			return nil, errors.New("schema must be a JSON object (or true/false)")
		}
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(jsonschema.SchemeURLLoader{}) // no files, no network
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	const loc = "sluice:///schema.json"
	if err := c.AddResource(loc, v); err != nil {
		return nil, fmt.Errorf("add schema: %w", err)
	}
	sch, err := c.Compile(loc)
	if err != nil {
		return nil, errors.New(compileMessage(err))
	}
	return &Schema{sch: sch, printer: message.NewPrinter(language.English), digest: sha256.Sum256(doc)}, nil
}

// compileMessage shortens the compiler's error to what a person needs:
// the library names our internal URL, which means nothing to the caller.
func compileMessage(err error) string {
	s := err.Error()
	s = strings.ReplaceAll(s, "sluice:///schema.json#", "#")
	s = strings.ReplaceAll(s, "sluice:///schema.json", "the schema")
	return s
}

// Doc is a message body parsed once, to be checked against any number of
// schemas.
type Doc struct {
	v   any
	err error // the body is not JSON
}

// Parse parses a body as JSON. A body that is not JSON is not an error
// here: every Check of the Doc reports it.
func Parse(body []byte) *Doc {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return &Doc{err: err}
	}
	return &Doc{v: v}
}

// Check validates d against s: nil when it matches, otherwise at most
// MaxErrors errors, sorted by pointer.
func (s *Schema) Check(d *Doc) []Error {
	if d.err != nil {
		return []Error{{Message: "body is not JSON: " + d.err.Error()}}
	}
	err := s.sch.Validate(d.v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []Error{{Message: err.Error()}}
	}
	var out []Error
	s.leaves(ve, &out)
	if len(out) == 0 {
		out = append(out, Error{Pointer: pointer(ve.InstanceLocation), Message: ve.ErrorKind.LocalizedString(s.printer)})
	}
	slices.SortStableFunc(out, func(a, b Error) int { return strings.Compare(a.Pointer, b.Pointer) })
	out = slices.Compact(out)
	if len(out) > MaxErrors {
		out = out[:MaxErrors]
	}
	return out
}

// Validate parses body and checks it: a shorthand for one schema.
func (s *Schema) Validate(body []byte) []Error { return s.Check(Parse(body)) }

// leaves collects the innermost errors: those say what is wrong; their
// parents only say which keyword (allOf, $ref, properties) led there.
func (s *Schema) leaves(ve *jsonschema.ValidationError, out *[]Error) {
	if len(ve.Causes) == 0 {
		*out = append(*out, Error{Pointer: pointer(ve.InstanceLocation), Message: ve.ErrorKind.LocalizedString(s.printer)})
		return
	}
	for _, c := range ve.Causes {
		s.leaves(c, out)
	}
}

// pointer encodes instance location tokens as a JSON pointer (RFC 6901).
func pointer(tokens []string) string {
	if len(tokens) == 0 {
		return ""
	}
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(t))
	}
	return b.String()
}

// IsJSON reports whether a message with this content type is validated as
// JSON: no content type at all, application/json, or any
// application/<something>+json, with any parameters (charset=utf-8).
func IsJSON(contentType string) bool {
	if strings.TrimSpace(contentType) == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}
