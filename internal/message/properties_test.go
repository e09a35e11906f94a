package message

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func allProperties() Properties {
	return Properties{
		Flags: FlagContentType | FlagContentEncoding | FlagHeaders | FlagDeliveryMode | FlagPriority |
			FlagCorrelationID | FlagReplyTo | FlagExpiration | FlagMessageID | FlagTimestamp |
			FlagType | FlagUserID | FlagAppID | FlagClusterID,
		ContentType:     "application/json",
		ContentEncoding: "gzip",
		Headers:         Table{"x-delay": int32(500)},
		DeliveryMode:    Persistent,
		Priority:        7,
		CorrelationID:   "corr",
		ReplyTo:         "amq.rabbitmq.reply-to",
		Expiration:      "60000",
		MessageID:       "m-1",
		Timestamp:       time.Unix(1700000000, 0).UTC(),
		Type:            "order.created",
		UserID:          "guest",
		AppID:           "shop",
		ClusterID:       "c1",
	}
}

func TestPropertiesWire(t *testing.T) {
	ts := time.Unix(1700000000, 0).UTC()
	tests := []struct {
		name  string
		props Properties
		wire  []byte
	}{
		{"none", Properties{}, u16(0)},
		{"empty string present", Properties{Flags: FlagContentType}, be(u16(0x8000), 0)},
		{"delivery mode and timestamp", Properties{Flags: FlagDeliveryMode | FlagTimestamp, DeliveryMode: 2, Timestamp: ts},
			be(u16(0x1040), 2, u64(1700000000))},
		{"headers and app-id", Properties{Flags: FlagHeaders | FlagAppID, Headers: Table{"a": "b"}, AppID: "x"},
			be(u16(0x2008), wrapLen(be(1, "a", "S", u32(1), "b")), 1, "x")},
		{"all", allProperties(), be(u16(0xfffc),
			16, "application/json", 4, "gzip", wrapLen(be(7, "x-delay", "I", u32(500))), 2, 7,
			4, "corr", 21, "amq.rabbitmq.reply-to", 5, "60000", 3, "m-1", u64(1700000000),
			13, "order.created", 5, "guest", 4, "shop", 2, "c1")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendProperties(nil, &tt.props)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.wire) {
				t.Fatalf("AppendProperties = % x\nwant                % x", got, tt.wire)
			}
			p, n, err := ReadProperties(append(tt.wire, 0xAA))
			if err != nil {
				t.Fatal(err)
			}
			if n != len(tt.wire) {
				t.Errorf("consumed %d bytes, want %d", n, len(tt.wire))
			}
			if !reflect.DeepEqual(p, tt.props) {
				t.Errorf("ReadProperties = %+v\nwant %+v", p, tt.props)
			}
		})
	}
}

func TestPropertiesAbsentFieldsNotWritten(t *testing.T) {
	p := Properties{Flags: FlagPriority, ContentType: "ignored", Priority: 3}
	got, err := AppendProperties(nil, &p)
	if err != nil {
		t.Fatal(err)
	}
	if want := be(u16(0x0800), 3); !bytes.Equal(got, want) {
		t.Errorf("got % x, want % x", got, want)
	}
}

func TestReadPropertiesContinuation(t *testing.T) {
	// A continuation bit announces another flags word; basic has no more
	// properties, so it is read and ignored.
	wire := be(u16(0x8001), u16(0x0000), 3, "a/b")
	p, n, err := ReadProperties(wire)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(wire) || p.Flags != FlagContentType || p.ContentType != "a/b" {
		t.Errorf("got %+v (%d bytes), want content-type a/b, %d bytes", p, n, len(wire))
	}
}

func TestReadPropertiesErrors(t *testing.T) {
	endless := u16(0x0001)
	for range 20 {
		endless = append(endless, u16(1)...)
	}
	tests := []struct {
		name string
		wire []byte
		want string
	}{
		{"empty", nil, "truncated property flags at offset 0"},
		{"string missing", u16(0x8000), "truncated property content-type length at offset 2"},
		{"string short", be(u16(0x4000), 5, "ab"), "truncated property content-encoding at offset 3"},
		{"timestamp short", be(u16(0x0040), 0, 0), "truncated property timestamp at offset 2"},
		{"bad headers", be(u16(0x2000), wrapLen(be(1, "k", "?"))), `property headers: value of "k": unknown field type '?' at offset 8`},
		{"endless continuation", endless, "more than 16 continued property flag words"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ReadProperties(tt.wire)
			if err == nil {
				t.Fatal("ReadProperties succeeded, want an error")
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

func TestAppendPropertiesErrors(t *testing.T) {
	tests := []struct {
		name  string
		props Properties
		want  string
	}{
		{"long reply-to", Properties{Flags: FlagReplyTo, ReplyTo: strings.Repeat("r", 256)}, "property reply-to: 256 bytes"},
		{"bad header", Properties{Flags: FlagHeaders, Headers: Table{"h": uint64(1)}}, `property headers: field table: value of "h": unsupported Go type uint64`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := AppendProperties([]byte("keep"), &tt.props)
			if err == nil {
				t.Fatal("AppendProperties succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if string(out) != "keep" {
				t.Errorf("returned %q on error, want dst unchanged", out)
			}
		})
	}
}

func FuzzReadProperties(f *testing.F) {
	for _, p := range []Properties{{}, allProperties(), {Flags: FlagHeaders | FlagUserID, UserID: "u"}} {
		b, err := AppendProperties(nil, &p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(be(u16(0x8001), u16(0), 1, "x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, n, err := ReadProperties(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if n < 2 || n > len(data) {
			t.Fatalf("consumed %d of %d bytes", n, len(data))
		}
		first, err := AppendProperties(nil, &p)
		if err != nil {
			t.Fatalf("re-encoding decoded properties: %v", err)
		}
		// Input without continuation words re-encodes byte for byte unless a
		// header table was not canonical; the encoding is always a fixed point.
		if data[1]&3 == 0 && p.Flags&FlagHeaders == 0 && !bytes.Equal(first, data[:n]) {
			t.Fatalf("re-encoded % x, want % x", first, data[:n])
		}
		checkCanonical(t, first, func(b []byte) ([]byte, error) {
			p2, n2, err := ReadProperties(b)
			if err != nil {
				return nil, err
			}
			if n2 != len(b) || p2.Flags != p.Flags {
				t.Fatalf("re-decoded flags %#x (%d bytes), want %#x (%d bytes)", p2.Flags, n2, p.Flags, len(b))
			}
			return AppendProperties(nil, &p2)
		})
	})
}
