package broker

import (
	"bytes"
	"strings"
	"time"

	"github.com/sluicemq/sluice/internal/message"
)

// headersMatch is a headers-exchange binding's compiled arguments.
type headersMatch struct {
	any   bool       // x-match any / any-with-x (else all)
	pairs []argMatch // the arguments that take part in matching
}

type argMatch struct {
	key   string
	value any
	void  bool // a void value matches any value, as long as the key is present
}

// newHeadersMatch compiles binding arguments. x-match is all, any,
// all-with-x or any-with-x (default all); other x- arguments take part only
// in the -with-x modes.
func newHeadersMatch(args message.Table) *headersMatch {
	m := &headersMatch{}
	withX := false
	if s, ok := args["x-match"].(string); ok {
		switch s {
		case "any":
			m.any = true
		case "any-with-x":
			m.any, withX = true, true
		case "all-with-x":
			withX = true
		}
	}
	for k, v := range args {
		if k == "x-match" || (!withX && strings.HasPrefix(k, "x-")) {
			continue
		}
		m.pairs = append(m.pairs, argMatch{key: k, value: v, void: v == nil})
	}
	return m
}

// validXMatch reports whether a headers binding's x-match argument is
// acceptable.
func validXMatch(args message.Table) (string, bool) {
	v, ok := args["x-match"]
	if !ok {
		return "", true
	}
	s, isStr := v.(string)
	switch {
	case !isStr:
		return typeName(v), false
	case s == "all" || s == "any" || s == "all-with-x" || s == "any-with-x":
		return s, true
	}
	return s, false
}

func (m *headersMatch) matches(h message.Table) bool {
	if len(m.pairs) == 0 {
		// RabbitMQ: no arguments to compare; all matches, any does not.
		return !m.any
	}
	for _, p := range m.pairs {
		v, present := h[p.key]
		ok := present && (p.void || fieldEqual(p.value, v))
		if m.any && ok {
			return true
		}
		if !m.any && !ok {
			return false
		}
	}
	return !m.any
}

// fieldEqual compares two field values as RabbitMQ does: same type class
// (every integer width is one class) and equal value.
func fieldEqual(a, b any) bool {
	if ai, ok := intValue(a); ok {
		bi, ok := intValue(b)
		return ok && ai == bi
	}
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		return ok && x == y
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case float32:
		y, ok := b.(float32)
		return ok && x == y
	case float64:
		y, ok := b.(float64)
		return ok && x == y
	case message.Decimal:
		y, ok := b.(message.Decimal)
		return ok && x == y
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	case nil:
		return b == nil
	case message.Table:
		y, ok := b.(message.Table)
		return ok && tablesEqual(x, y)
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !fieldEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return false
}

// tablesEqual compares two tables field by field.
func tablesEqual(a, b message.Table) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !fieldEqual(v, w) {
			return false
		}
	}
	return true
}

// intValue returns an integer field value as int64.
func intValue(v any) (int64, bool) { return message.IntValue(v) }

// typeName is RabbitMQ's name of a field value's type.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "void"
	case bool:
		return "bool"
	case int8:
		return "byte"
	case uint8:
		return "unsignedbyte"
	case int16:
		return "short"
	case uint16:
		return "unsignedshort"
	case int32, int:
		return "signedint"
	case uint32:
		return "unsignedint"
	case int64:
		return "long"
	case float32:
		return "float"
	case float64:
		return "double"
	case message.Decimal:
		return "decimal"
	case string:
		return "longstr"
	case []byte:
		return "binary"
	case []any:
		return "array"
	case time.Time:
		return "timestamp"
	case message.Table:
		return "table"
	}
	return "unknown"
}
