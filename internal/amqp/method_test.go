package amqp

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/message"
)

// fill sets every field of the method m points to a non-zero value derived
// from the field index; flip inverts the booleans so both bit patterns are
// exercised.
func fill(m Method, flip bool) Method {
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Interface().(type) {
		case uint8, uint16, uint32, uint64:
			f.SetUint(uint64(i+1) * 0x0101)
			if f.Kind() == reflect.Uint64 {
				f.SetUint(0x0102030405060708 + uint64(i))
			}
		case bool:
			f.SetBool((i%2 == 0) != flip)
		case string:
			f.SetString(fmt.Sprintf("%s-%d", v.Type().Field(i).Name, i))
		case message.Table:
			f.Set(reflect.ValueOf(message.Table{"k": int32(i), "nested": message.Table{"a": []any{"x"}}}))
		case time.Time:
			f.Set(reflect.ValueOf(time.Unix(int64(1700000000+i), 0).UTC()))
		default:
			panic(fmt.Sprintf("fill: field %s of unhandled type %s", v.Type().Field(i).Name, f.Type()))
		}
	}
	return m
}

func TestMethodRoundTrip(t *testing.T) {
	methods := allMethods()
	if len(methods) != 66 {
		t.Errorf("%d methods generated, want the spec's 66", len(methods))
	}
	for _, zero := range methods {
		for _, flip := range []bool{false, true} {
			m := fill(zero, flip)
			t.Run(fmt.Sprintf("%s/flip=%t", m.Name(), flip), func(t *testing.T) {
				wire, err := AppendMethod([]byte("dst"), m)
				if err != nil {
					t.Fatal(err)
				}
				wire = wire[3:]
				if got := [2]uint16{uint16(wire[0])<<8 | uint16(wire[1]), uint16(wire[2])<<8 | uint16(wire[3])}; got != [2]uint16{m.ClassID(), m.MethodID()} {
					t.Errorf("ids on the wire %v, want %d %d", got, m.ClassID(), m.MethodID())
				}
				got, err := ReadMethod(wire)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, m) {
					t.Errorf("ReadMethod = %+v\nwant %+v", got, m)
				}
			})
		}
	}
}

func TestMethodMetadata(t *testing.T) {
	tests := []struct {
		m             Method
		name          string
		class, method uint16
		sync, content bool
	}{
		{&ConnectionStart{}, "connection.start", 10, 10, true, false},
		{&ConnectionUpdateSecret{}, "connection.update-secret", 10, 70, true, false},
		{&ChannelOpen{}, "channel.open", 20, 10, true, false},
		{&QueueDeclareOk{}, "queue.declare-ok", 50, 11, false, false},
		{&BasicPublish{}, "basic.publish", 60, 40, false, true},
		{&BasicReturn{}, "basic.return", 60, 50, false, true},
		{&BasicDeliver{}, "basic.deliver", 60, 60, false, true},
		{&BasicGetOk{}, "basic.get-ok", 60, 71, false, true},
		{&BasicGetEmpty{}, "basic.get-empty", 60, 72, false, false},
		{&BasicRecoverAsync{}, "basic.recover-async", 60, 100, false, false},
		{&BasicNack{}, "basic.nack", 60, 120, false, false},
		{&TxSelect{}, "tx.select", 90, 10, true, false},
		{&ConfirmSelect{}, "confirm.select", 85, 10, true, false},
		{&ConfirmSelectOk{}, "confirm.select-ok", 85, 11, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.m.Name() != tt.name || tt.m.ClassID() != tt.class || tt.m.MethodID() != tt.method ||
				tt.m.Synchronous() != tt.sync || tt.m.HasContent() != tt.content {
				t.Errorf("got %s %d/%d sync=%t content=%t, want %s %d/%d sync=%t content=%t",
					tt.m.Name(), tt.m.ClassID(), tt.m.MethodID(), tt.m.Synchronous(), tt.m.HasContent(),
					tt.name, tt.class, tt.method, tt.sync, tt.content)
			}
		})
	}
}

func TestMethodWire(t *testing.T) {
	tests := []struct {
		name string
		m    Method
		wire []byte
	}{
		{"basic.publish", &BasicPublish{Exchange: "ex", RoutingKey: "rk", Mandatory: true},
			[]byte("\x00\x3c\x00\x28\x00\x00\x02ex\x02rk\x01")},
		{"queue.declare packs five bits", &QueueDeclare{Queue: "q", Durable: true, AutoDelete: true, NoWait: true, Arguments: message.Table{}},
			[]byte("\x00\x32\x00\x0a\x00\x00\x01q\x1a\x00\x00\x00\x00")},
		{"connection.close", &ConnectionClose{ReplyCode: NotFound, ReplyText: "NOT_FOUND", ClassId: 50, MethodId: 10},
			[]byte("\x00\x0a\x00\x32\x01\x94\x09NOT_FOUND\x00\x32\x00\x0a")},
		{"basic.ack longlong", &BasicAck{DeliveryTag: 1 << 40, Multiple: true},
			[]byte("\x00\x3c\x00\x50\x00\x00\x01\x00\x00\x00\x00\x00\x01")},
		{"connection.tune", &ConnectionTune{ChannelMax: 2047, FrameMax: 131072, Heartbeat: 60},
			[]byte("\x00\x0a\x00\x1e\x07\xff\x00\x02\x00\x00\x00\x3c")},
		{"channel.open-ok longstr", &ChannelOpenOk{ChannelId: "id"},
			[]byte("\x00\x14\x00\x0b\x00\x00\x00\x02id")},
		{"tx.commit no arguments", &TxCommit{}, []byte("\x00\x5a\x00\x14")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendMethod(nil, tt.m)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.wire) {
				t.Fatalf("AppendMethod = % x\nwant            % x", got, tt.wire)
			}
			m, err := ReadMethod(tt.wire)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, tt.m) {
				t.Errorf("ReadMethod = %+v, want %+v", m, tt.m)
			}
		})
	}
}

func wantProtocolError(t *testing.T, err error, code uint16, reason string) {
	t.Helper()
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *ProtocolError", err, err)
	}
	if pe.Code != code {
		t.Errorf("code %d (%s), want %d (%s); error %v", pe.Code, ReplyText(pe.Code), code, ReplyText(code), err)
	}
	if !strings.Contains(pe.Reason, reason) {
		t.Errorf("reason %q does not contain %q", pe.Reason, reason)
	}
}

func TestReadMethodTruncated(t *testing.T) {
	for _, zero := range allMethods() {
		m := fill(zero, false)
		wire, err := AppendMethod(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(m.Name(), func(t *testing.T) {
			for n := range len(wire) {
				_, err := ReadMethod(wire[:n])
				wantProtocolError(t, err, SyntaxError, "")
			}
			_, err := ReadMethod(append(wire, 0))
			wantProtocolError(t, err, SyntaxError, "unexpected bytes after the arguments")
		})
	}
}

func TestReadMethodErrors(t *testing.T) {
	tests := []struct {
		name   string
		wire   []byte
		code   uint16
		reason string
	}{
		{"unknown class", []byte("\x00\x63\x00\x0a"), CommandInvalid, "unknown class 99"},
		{"unknown method", []byte("\x00\x3c\x00\x29"), CommandInvalid, "unknown method 41 of class 60"},
		{"short payload", []byte("\x00"), SyntaxError, "shorter than its class and method ids"},
		{"shortstr past end", []byte("\x00\x3c\x00\x15\x05ab"), SyntaxError, "basic.consume-ok: consumer-tag: truncated at offset 5"},
		{"longstr past end", []byte("\x00\x0a\x00\x15\xff\xff\xff\xff"), SyntaxError, "connection.secure-ok: response: long string length 4294967295"},
		{"bad table", []byte("\x00\x32\x00\x0a\x00\x00\x01q\x00\x00\x00\x00\x03\x01k?"), SyntaxError, `queue.declare: arguments (offsets from 9): field table: value of "k": unknown field type '?' at offset 6`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadMethod(tt.wire)
			wantProtocolError(t, err, tt.code, tt.reason)
		})
	}
}

func TestAppendMethodErrors(t *testing.T) {
	tests := []struct {
		name string
		m    Method
		want string
	}{
		{"long shortstr", &BasicPublish{RoutingKey: strings.Repeat("r", 256)}, "encode basic.publish: routing-key: short string of 256 bytes"},
		{"bad table value", &QueueDeclare{Arguments: message.Table{"x-max-length": uint64(1)}}, `encode queue.declare: arguments: field table: value of "x-max-length": unsupported Go type uint64`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := AppendMethod([]byte("keep"), tt.m)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if string(out) != "keep" {
				t.Errorf("returned %q on error, want dst unchanged", out)
			}
		})
	}
}

func TestReplyText(t *testing.T) {
	tests := map[uint16]string{200: "REPLY_SUCCESS", 404: "NOT_FOUND", 406: "PRECONDITION_FAILED", 501: "FRAME_ERROR", 541: "INTERNAL_ERROR", 999: "", 1: ""}
	for code, want := range tests {
		if got := ReplyText(code); got != want {
			t.Errorf("ReplyText(%d) = %q, want %q", code, got, want)
		}
	}
}

func TestContentHeaderRoundTrip(t *testing.T) {
	h := ContentHeader{ClassID: ClassBasic, BodySize: 1 << 33, Properties: message.Properties{
		Flags:       message.FlagContentType | message.FlagHeaders | message.FlagDeliveryMode,
		ContentType: "text/plain", Headers: message.Table{"x-delay": int32(5)}, DeliveryMode: 2,
	}}
	wire, err := AppendContentHeader(nil, &h)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte("\x00\x3c\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\xb0\x00"); !bytes.HasPrefix(wire, want) {
		t.Fatalf("wire % x does not start with % x", wire, want)
	}
	got, err := ReadContentHeader(wire)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, h) {
		t.Errorf("ReadContentHeader = %+v, want %+v", got, h)
	}
	for n := range len(wire) {
		_, err := ReadContentHeader(wire[:n])
		wantProtocolError(t, err, SyntaxError, "")
	}
	_, err = ReadContentHeader(append(wire, 1))
	wantProtocolError(t, err, SyntaxError, "1 unexpected bytes after the properties")
}

func FuzzReadMethod(f *testing.F) {
	for _, m := range allMethods() {
		b, err := AppendMethod(nil, fill(m, false))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ReadMethod(data)
		if err != nil {
			var pe *ProtocolError
			if !errors.As(err, &pe) || (pe.Code != SyntaxError && pe.Code != CommandInvalid) {
				t.Fatalf("error %v is not a SyntaxError or CommandInvalid *ProtocolError", err)
			}
			return
		}
		first, err := AppendMethod(nil, m)
		if err != nil {
			t.Fatalf("re-encoding decoded %s: %v", m.Name(), err)
		}
		// Lengths may differ: duplicate table keys collapse, 'L' becomes 'l'.
		m2, err := ReadMethod(first)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", m.Name(), err)
		}
		second, err := AppendMethod(nil, m2)
		if err != nil {
			t.Fatal(err)
		}
		// Compare encodings rather than values: a NaN in a table is unequal
		// to itself but encodes identically.
		if !bytes.Equal(first, second) {
			t.Fatalf("%s: encoding not stable:\n first % x\nsecond % x", m.Name(), first, second)
		}
	})
}

func BenchmarkAppendMethodBasicPublish(b *testing.B) {
	m := &BasicPublish{Exchange: "amq.direct", RoutingKey: "orders.created", Mandatory: true}
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendMethod(buf[:0], m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadMethodBasicPublish(b *testing.B) {
	wire, err := AppendMethod(nil, &BasicPublish{Exchange: "amq.direct", RoutingKey: "orders.created", Mandatory: true})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadMethod(wire); err != nil {
			b.Fatal(err)
		}
	}
}

func benchHeader() *ContentHeader {
	return &ContentHeader{ClassID: ClassBasic, BodySize: 1024, Properties: message.Properties{
		Flags:       message.FlagContentType | message.FlagHeaders | message.FlagDeliveryMode | message.FlagMessageID | message.FlagTimestamp,
		ContentType: "application/json", Headers: message.Table{"x-delay": int32(100), "trace": "abc"},
		DeliveryMode: 2, MessageID: "msg-42", Timestamp: time.Unix(1700000000, 0).UTC(),
	}}
}

func BenchmarkAppendContentHeader(b *testing.B) {
	h := benchHeader()
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendContentHeader(buf[:0], h); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadContentHeader(b *testing.B) {
	wire, err := AppendContentHeader(nil, benchHeader())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadContentHeader(wire); err != nil {
			b.Fatal(err)
		}
	}
}
