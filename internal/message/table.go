package message

// This file is the field-table encoding: AMQP 0-9-1 field tables and arrays
// with RabbitMQ's type letters.
//
// Encoding writes a table's keys in sorted (byte-wise) order, because Go maps
// keep none. Decoding a table whose keys were sorted and encoded with the
// canonical letters below therefore re-encodes byte for byte; input in another
// key order, with duplicate keys, with the letter 'L' (read as int64, as
// RabbitMQ does, and written back as 'l') or with a boolean octet other than
// 0 or 1 decodes to the same Table but re-encodes canonically.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// MaxDepth is how deeply tables and arrays may nest, on decode and encode.
// It keeps hostile input (and cyclic values) from exhausting the stack.
const MaxDepth = 64

// ErrMalformed is wrapped by every decoding error of this package.
var ErrMalformed = errors.New("malformed encoding")

// decodeError is a decoding failure; it matches ErrMalformed with errors.Is.
type decodeError struct{ msg string }

func (e *decodeError) Error() string        { return e.msg }
func (e *decodeError) Is(target error) bool { return target == ErrMalformed }

func malformed(format string, args ...any) error {
	return &decodeError{msg: fmt.Sprintf(format, args...)}
}

// AppendTable appends t as a field table (a 4-byte length, then the entries
// in sorted key order) to dst. A nil Table encodes as an empty one.
func AppendTable(dst []byte, t Table) ([]byte, error) {
	out, err := appendTable(dst, t, 0)
	if err != nil {
		return dst, fmt.Errorf("field table: %w", err)
	}
	return out, nil
}

// AppendArray appends a as a field array (a 4-byte length, then the values).
func AppendArray(dst []byte, a []any) ([]byte, error) {
	out, err := appendArray(dst, a, 0)
	if err != nil {
		return dst, fmt.Errorf("field array: %w", err)
	}
	return out, nil
}

// AppendFieldValue appends v as one field value: its type letter, then the
// value. v must be nil or one of the types Table documents; an int is
// accepted too and written as int64 ('l').
func AppendFieldValue(dst []byte, v any) ([]byte, error) {
	out, err := appendValue(dst, v, 0)
	if err != nil {
		return dst, fmt.Errorf("field value: %w", err)
	}
	return out, nil
}

func appendTable(dst []byte, t Table, depth int) ([]byte, error) {
	if depth >= MaxDepth {
		return dst, fmt.Errorf("nested deeper than %d", MaxDepth)
	}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if len(k) > math.MaxUint8 {
			return dst[:start], fmt.Errorf("key %.20q…: longer than 255 bytes", k)
		}
		dst = append(dst, byte(len(k)))
		dst = append(dst, k...)
		var err error
		if dst, err = appendValue(dst, t[k], depth); err != nil {
			return dst[:start], fmt.Errorf("value of %q: %w", k, err)
		}
	}
	return patchLength(dst, start)
}

func appendArray(dst []byte, a []any, depth int) ([]byte, error) {
	if depth >= MaxDepth {
		return dst, fmt.Errorf("nested deeper than %d", MaxDepth)
	}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	for i, v := range a {
		var err error
		if dst, err = appendValue(dst, v, depth); err != nil {
			return dst[:start], fmt.Errorf("element %d: %w", i, err)
		}
	}
	return patchLength(dst, start)
}

// patchLength fills in the 4-byte length at dst[start:] of what follows it.
func patchLength(dst []byte, start int) ([]byte, error) {
	n := len(dst) - start - 4
	if uint64(n) > math.MaxUint32 {
		return dst[:start], fmt.Errorf("%d bytes: longer than 4 GiB", n)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(n))
	return dst, nil
}

func appendValue(dst []byte, v any, depth int) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, 'V'), nil
	case bool:
		b := byte(0)
		if v {
			b = 1
		}
		return append(dst, 't', b), nil
	case int8:
		return append(dst, 'b', byte(v)), nil
	case uint8:
		return append(dst, 'B', v), nil
	case int16:
		return binary.BigEndian.AppendUint16(append(dst, 's'), uint16(v)), nil
	case uint16:
		return binary.BigEndian.AppendUint16(append(dst, 'u'), v), nil
	case int32:
		return binary.BigEndian.AppendUint32(append(dst, 'I'), uint32(v)), nil
	case uint32:
		return binary.BigEndian.AppendUint32(append(dst, 'i'), v), nil
	case int64:
		return binary.BigEndian.AppendUint64(append(dst, 'l'), uint64(v)), nil
	case int:
		return binary.BigEndian.AppendUint64(append(dst, 'l'), uint64(int64(v))), nil
	case float32:
		return binary.BigEndian.AppendUint32(append(dst, 'f'), math.Float32bits(v)), nil
	case float64:
		return binary.BigEndian.AppendUint64(append(dst, 'd'), math.Float64bits(v)), nil
	case Decimal:
		return binary.BigEndian.AppendUint32(append(dst, 'D', v.Scale), uint32(v.Value)), nil
	case string:
		return appendLongBytes(append(dst, 'S'), v)
	case []byte:
		return appendLongBytes(append(dst, 'x'), v)
	case time.Time:
		return binary.BigEndian.AppendUint64(append(dst, 'T'), uint64(v.Unix())), nil
	case Table:
		return appendTable(append(dst, 'F'), v, depth+1)
	case []any:
		return appendArray(append(dst, 'A'), v, depth+1)
	default:
		return dst, fmt.Errorf("unsupported Go type %T", v)
	}
}

func appendLongBytes[S string | []byte](dst []byte, s S) ([]byte, error) {
	if uint64(len(s)) > math.MaxUint32 {
		return dst, fmt.Errorf("%d bytes: longer than 4 GiB", len(s))
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...), nil
}

// ReadTable decodes the field table at the start of b and returns it with the
// number of bytes it took. Errors wrap ErrMalformed and name the offending key
// and offset (counted from the start of b).
func ReadTable(b []byte) (Table, int, error) {
	d := decoder{b: b}
	t, err := d.table(0)
	if err != nil {
		return nil, 0, fmt.Errorf("field table: %w", err)
	}
	return t, d.off, nil
}

// ReadArray decodes the field array at the start of b and returns it with the
// number of bytes it took.
func ReadArray(b []byte) ([]any, int, error) {
	d := decoder{b: b}
	a, err := d.array(0)
	if err != nil {
		return nil, 0, fmt.Errorf("field array: %w", err)
	}
	return a, d.off, nil
}

// ReadFieldValue decodes one field value (type letter and value) at the start
// of b and returns it with the number of bytes it took.
func ReadFieldValue(b []byte) (any, int, error) {
	d := decoder{b: b}
	v, err := d.value(0)
	if err != nil {
		return nil, 0, fmt.Errorf("field value: %w", err)
	}
	return v, d.off, nil
}

// decoder reads from b at off; offsets in errors are positions in b.
type decoder struct {
	b   []byte
	off int
}

// take returns the next n bytes, or an error naming what was being read.
func (d *decoder) take(n int, what string) ([]byte, error) {
	return d.takeOf(n, "", what)
}

// takeOf is take for an error text in two parts, prefix and what, joined
// only when there is an error.
func (d *decoder) takeOf(n int, prefix, what string) ([]byte, error) {
	if n < 0 || len(d.b)-d.off < n {
		return nil, malformed("truncated %s%s at offset %d: need %d bytes, have %d", prefix, what, d.off, n, len(d.b)-d.off)
	}
	p := d.b[d.off : d.off+n : d.off+n]
	d.off += n
	return p, nil
}

// section reads a 4-byte length and returns a decoder limited to that many
// following bytes, with offsets still counted in the whole input.
func (d *decoder) section(what string) (decoder, error) {
	lb, err := d.takeOf(4, what, " length")
	if err != nil {
		return decoder{}, err
	}
	n := binary.BigEndian.Uint32(lb)
	if uint64(n) > uint64(len(d.b)-d.off) {
		return decoder{}, malformed("%s length %d at offset %d exceeds the %d bytes left", what, n, d.off-4, len(d.b)-d.off)
	}
	sub := decoder{b: d.b[:d.off+int(n)], off: d.off}
	d.off += int(n)
	return sub, nil
}

func (d *decoder) table(depth int) (Table, error) {
	if depth >= MaxDepth {
		return nil, malformed("table at offset %d nested deeper than %d", d.off, MaxDepth)
	}
	sub, err := d.section("table")
	if err != nil {
		return nil, err
	}
	t := Table{}
	for sub.off < len(sub.b) {
		kl, err := sub.take(1, "key length")
		if err != nil {
			return nil, err
		}
		kb, err := sub.take(int(kl[0]), "key")
		if err != nil {
			return nil, err
		}
		k := string(kb)
		v, err := sub.value(depth)
		if err != nil {
			return nil, fmt.Errorf("value of %q: %w", k, err)
		}
		t[k] = v
	}
	return t, nil
}

func (d *decoder) array(depth int) ([]any, error) {
	if depth >= MaxDepth {
		return nil, malformed("array at offset %d nested deeper than %d", d.off, MaxDepth)
	}
	sub, err := d.section("array")
	if err != nil {
		return nil, err
	}
	a := []any{}
	for sub.off < len(sub.b) {
		v, err := sub.value(depth)
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", len(a), err)
		}
		a = append(a, v)
	}
	return a, nil
}

// fixedSize is the byte size of the fixed-width field types.
func fixedSize(typ byte) int {
	switch typ {
	case 't', 'b', 'B':
		return 1
	case 's', 'u':
		return 2
	case 'I', 'i', 'f':
		return 4
	case 'D':
		return 5
	case 'l', 'L', 'd', 'T':
		return 8
	}
	return 0
}

func (d *decoder) value(depth int) (any, error) {
	tb, err := d.take(1, "field type")
	if err != nil {
		return nil, err
	}
	typ := tb[0]
	if n := fixedSize(typ); n > 0 {
		if len(d.b)-d.off < n {
			return nil, malformed("truncated value of type '%c' at offset %d: need %d bytes, have %d", typ, d.off, n, len(d.b)-d.off)
		}
		p := d.b[d.off : d.off+n]
		d.off += n
		return fixedValue(typ, p), nil
	}
	switch typ {
	case 'V':
		return nil, nil
	case 'S':
		sub, err := d.section("value of type 'S'")
		if err != nil {
			return nil, err
		}
		return string(sub.b[sub.off:]), nil
	case 'x':
		sub, err := d.section("value of type 'x'")
		if err != nil {
			return nil, err
		}
		return slices.Clone(sub.b[sub.off:]), nil
	case 'F':
		return d.table(depth + 1)
	case 'A':
		return d.array(depth + 1)
	}
	return nil, malformed("unknown field type %s at offset %d", quoteType(typ), d.off-1)
}

// fixedValue decodes a fixed-width value whose bytes p have the right length.
func fixedValue(typ byte, p []byte) any {
	switch typ {
	case 't':
		return p[0] != 0
	case 'b':
		return int8(p[0])
	case 'B':
		return p[0]
	case 's':
		return int16(binary.BigEndian.Uint16(p))
	case 'u':
		return binary.BigEndian.Uint16(p)
	case 'I':
		return int32(binary.BigEndian.Uint32(p))
	case 'i':
		return binary.BigEndian.Uint32(p)
	case 'f':
		return math.Float32frombits(binary.BigEndian.Uint32(p))
	case 'D':
		return Decimal{Scale: p[0], Value: int32(binary.BigEndian.Uint32(p[1:]))}
	case 'l', 'L':
		return int64(binary.BigEndian.Uint64(p))
	case 'd':
		return math.Float64frombits(binary.BigEndian.Uint64(p))
	case 'T':
		return time.Unix(int64(binary.BigEndian.Uint64(p)), 0).UTC()
	}
	panic("message: fixedValue of non-fixed type")
}

// quoteType renders a type byte for an error: 'Q', or 0x00 if unprintable.
func quoteType(b byte) string {
	if b >= 0x21 && b < 0x7f {
		return fmt.Sprintf("'%c'", b)
	}
	return fmt.Sprintf("0x%02x", b)
}

// IntValue returns a field value of any of the table's integer types as
// int64 (false for another type, or a uint64 beyond int64's range).
func IntValue(v any) (int64, bool) {
	switch x := v.(type) {
	case int8:
		return int64(x), true
	case uint8:
		return int64(x), true
	case int16:
		return int64(x), true
	case uint16:
		return int64(x), true
	case int32:
		return int64(x), true
	case uint32:
		return int64(x), true
	case int64:
		return x, true
	case uint64:
		if x > math.MaxInt64 {
			return 0, false
		}
		return int64(x), true
	case int:
		return int64(x), true
	}
	return 0, false
}
