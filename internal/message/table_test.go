package message

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// be builds big-endian test input from bytes and strings.
func be(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch p := p.(type) {
		case int:
			b = append(b, byte(p))
		case byte:
			b = append(b, p)
		case string:
			b = append(b, p...)
		case []byte:
			b = append(b, p...)
		default:
			panic("be: bad part")
		}
	}
	return b
}

func u16(v uint16) []byte { return []byte{byte(v >> 8), byte(v)} }
func u32(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }
func u64(v uint64) []byte { return append(u32(uint32(v>>32)), u32(uint32(v))...) }

// wrapLen prefixes b with its 4-byte length.
func wrapLen(b []byte) []byte { return append(u32(uint32(len(b))), b...) }

func TestFieldValueTypes(t *testing.T) {
	ts := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	tests := []struct {
		name  string
		value any
		wire  []byte
	}{
		{"void", nil, be("V")},
		{"bool true", true, be("t", 1)},
		{"bool false", false, be("t", 0)},
		{"int8", int8(-2), be("b", 0xfe)},
		{"uint8", uint8(200), be("B", 200)},
		{"int16", int16(-300), be("s", u16(0xfed4))},
		{"uint16", uint16(65000), be("u", u16(65000))},
		{"int32", int32(-70000), be("I", u32(0xfffeee90))},
		{"uint32", uint32(4000000000), be("i", u32(4000000000))},
		{"int64", int64(-5), be("l", u64(0xfffffffffffffffb))},
		{"float32", float32(1.5), be("f", u32(math.Float32bits(1.5)))},
		{"float64", float64(-2.25), be("d", u64(math.Float64bits(-2.25)))},
		{"decimal", Decimal{Scale: 2, Value: -12345}, be("D", 2, u32(0xffffcfc7))},
		{"long string", "héllo", be("S", wrapLen([]byte("héllo")))},
		{"empty string", "", be("S", u32(0))},
		{"byte array", []byte{0, 1, 2}, be("x", u32(3), 0, 1, 2)},
		{"timestamp", ts, be("T", u64(uint64(ts.Unix())))},
		{"table", Table{"a": int32(1)}, be("F", wrapLen(be(1, "a", "I", u32(1))))},
		{"empty table", Table{}, be("F", u32(0))},
		{"array", []any{int32(1), "x", nil}, be("A", wrapLen(be("I", u32(1), "S", u32(1), "x", "V")))},
		{"empty array", []any{}, be("A", u32(0))},
		{"nested", []any{Table{"k": []any{true}}}, be("A", wrapLen(be("F", wrapLen(be(1, "k", "A", wrapLen(be("t", 1)))))))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendFieldValue(nil, tt.value)
			if err != nil {
				t.Fatalf("AppendFieldValue: %v", err)
			}
			if !bytes.Equal(got, tt.wire) {
				t.Fatalf("AppendFieldValue = % x, want % x", got, tt.wire)
			}
			v, n, err := ReadFieldValue(append(tt.wire, 0xAA)) // trailing byte not consumed
			if err != nil {
				t.Fatalf("ReadFieldValue: %v", err)
			}
			if n != len(tt.wire) {
				t.Errorf("ReadFieldValue consumed %d bytes, want %d", n, len(tt.wire))
			}
			if !reflect.DeepEqual(v, tt.value) {
				t.Errorf("ReadFieldValue = %#v, want %#v", v, tt.value)
			}
		})
	}
}

// TestDecodeOnlyTypes covers letters read but written differently.
func TestDecodeOnlyTypes(t *testing.T) {
	tests := []struct {
		name string
		wire []byte
		want any
		back []byte
	}{
		{"L is a signed 64-bit long as in RabbitMQ", be("L", u64(math.MaxUint64)), int64(-1), be("l", u64(math.MaxUint64))},
		{"bool octet 2 is true", be("t", 2), true, be("t", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _, err := ReadFieldValue(tt.wire)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(v, tt.want) {
				t.Fatalf("got %#v, want %#v", v, tt.want)
			}
			back, err := AppendFieldValue(nil, v)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back, tt.back) {
				t.Errorf("re-encoded % x, want % x", back, tt.back)
			}
		})
	}
}

func TestAppendIntAsLong(t *testing.T) {
	got, err := AppendFieldValue(nil, 7)
	if err != nil {
		t.Fatal(err)
	}
	if want := be("l", u64(7)); !bytes.Equal(got, want) {
		t.Errorf("got % x, want % x", got, want)
	}
}

func TestTableSortedAndRoundTrip(t *testing.T) {
	tab := Table{
		"zeta":  "last",
		"alpha": int64(1),
		"mid":   Table{"b": true, "a": []any{uint8(1), int16(-1)}},
	}
	wire, err := AppendTable([]byte("prefix"), tab)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(wire, []byte("prefix")) {
		t.Fatalf("AppendTable dropped dst")
	}
	wire = wire[len("prefix"):]
	want := wrapLen(be(
		5, "alpha", "l", u64(1),
		3, "mid", "F", wrapLen(be(1, "a", "A", wrapLen(be("B", 1, "s", u16(0xffff))), 1, "b", "t", 1)),
		4, "zeta", "S", wrapLen([]byte("last")),
	))
	if !bytes.Equal(wire, want) {
		t.Fatalf("AppendTable = % x\nwant           % x", wire, want)
	}
	got, n, err := ReadTable(wire)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(wire) || !reflect.DeepEqual(got, tab) {
		t.Errorf("ReadTable = %#v (%d bytes), want %#v (%d bytes)", got, n, tab, len(wire))
	}
}

func TestNilTableEncodesEmpty(t *testing.T) {
	got, err := AppendTable(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, u32(0)) {
		t.Errorf("got % x, want 00 00 00 00", got)
	}
	tab, n, err := ReadTable(got)
	if err != nil || n != 4 || tab == nil || len(tab) != 0 {
		t.Errorf("ReadTable = %#v, %d, %v; want empty non-nil table, 4, nil", tab, n, err)
	}
}

func TestArrayRoundTrip(t *testing.T) {
	a := []any{"x", int32(-1), []any{}, Table{}, nil, []byte{}}
	wire, err := AppendArray(nil, a)
	if err != nil {
		t.Fatal(err)
	}
	got, n, err := ReadArray(wire)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(wire) || !reflect.DeepEqual(got, a) {
		t.Errorf("ReadArray = %#v, %d; want %#v, %d", got, n, a, len(wire))
	}
}

func TestReadTableErrors(t *testing.T) {
	deep := be("V")
	for range MaxDepth + 1 {
		deep = be("A", wrapLen(deep))
	}
	tests := []struct {
		name string
		wire []byte
		want string // substring of the error
	}{
		{"empty input", nil, "truncated table length at offset 0"},
		{"length past end", be(u32(10), 1, "a"), "table length 10 at offset 0 exceeds the 2 bytes left"},
		{"unknown type", wrapLen(be(12, "x-max-length", "Q", u32(1))), `field table: value of "x-max-length": unknown field type 'Q' at offset 17`},
		{"unprintable type", wrapLen(be(1, "k", 0)), "unknown field type 0x00 at offset 6"},
		{"key past end", wrapLen(be(9, "ab")), "truncated key at offset 5"},
		{"value truncated", wrapLen(be(1, "k", "I", 0, 0)), `value of "k": truncated value of type 'I' at offset 7`},
		{"string past table end", be(u32(7), 1, "k", "S", u32(9), "abcdefghij"), "value of type 'S' length 9 at offset 7"},
		{"missing type", wrapLen(be(1, "k")), "truncated field type"},
		{"nested error", wrapLen(be(1, "a", "F", wrapLen(be(1, "b", "Z")))), `value of "a": value of "b": unknown field type 'Z' at offset 13`},
		{"array element", wrapLen(be(1, "a", "A", wrapLen(be("V", "?")))), `value of "a": element 1: unknown field type '?'`},
		{"too deep", wrapLen(be(1, "d", deep)), "nested deeper than 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ReadTable(tt.wire)
			if err == nil {
				t.Fatal("ReadTable succeeded, want an error")
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v does not wrap ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestAppendTableErrors(t *testing.T) {
	cyclic := Table{}
	cyclic["self"] = cyclic
	tests := []struct {
		name string
		tab  Table
		want string
	}{
		{"unsupported type", Table{"ok": int32(1), "x-bad": struct{}{}}, `value of "x-bad": unsupported Go type struct {}`},
		{"nested unsupported", Table{"a": []any{1, uint64(3)}}, `value of "a": element 1: unsupported Go type uint64`},
		{"long key", Table{strings.Repeat("k", 256): nil}, "longer than 255 bytes"},
		{"cycle", cyclic, "nested deeper than 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("keep")
			out, err := AppendTable(dst, tt.tab)
			if err == nil {
				t.Fatal("AppendTable succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if string(out) != "keep" {
				t.Errorf("AppendTable returned %q on error, want dst unchanged", out)
			}
		})
	}
}

// roundTrip checks the codec's contract on any input a decoder accepted:
// re-encoding is canonical (a fixed point) and decodes to the same bytes.
func checkCanonical(t *testing.T, first []byte, read func([]byte) ([]byte, error)) {
	t.Helper()
	second, err := read(first)
	if err != nil {
		t.Fatalf("re-decoding %x: %v", first, err)
	}
	if !bytes.Equal(first, second) {
		t.Fatalf("encoding is not stable:\n first % x\nsecond % x", first, second)
	}
}

func FuzzReadTable(f *testing.F) {
	seeds := []Table{
		{},
		{"x-max-length": int32(10), "x-queue-type": "quorum"},
		{"x-death": []any{Table{"count": int64(1), "reason": "expired", "time": time.Unix(1700000000, 0).UTC(), "routing-keys": []any{"a"}}}},
		{"f": float32(1), "d": 2.5, "D": Decimal{1, 2}, "x": []byte{1}, "b": int8(1), "B": uint8(1), "s": int16(1), "u": uint16(1), "i": uint32(1), "t": true, "V": nil},
	}
	for _, s := range seeds {
		b, err := AppendTable(nil, s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(wrapLen(be(1, "k", "L", u64(1))))
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, n, err := ReadTable(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if n < 4 || n > len(data) {
			t.Fatalf("consumed %d of %d bytes", n, len(data))
		}
		first, err := AppendTable(nil, tab)
		if err != nil {
			t.Fatalf("re-encoding a decoded table: %v", err)
		}
		checkCanonical(t, first, func(b []byte) ([]byte, error) {
			tab2, n2, err := ReadTable(b)
			if err != nil {
				return nil, err
			}
			if n2 != len(b) {
				t.Fatalf("re-decode consumed %d of %d bytes", n2, len(b))
			}
			if len(tab2) != len(tab) {
				t.Fatalf("re-decoded %d keys, want %d", len(tab2), len(tab))
			}
			return AppendTable(nil, tab2)
		})
	})
}
