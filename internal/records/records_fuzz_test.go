package records

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/store"
)

// mustCorrupt fails unless a decode error says the data is corrupt: a
// damaged record must never read as something else (or panic).
func mustCorrupt(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil && !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("decode %s: error %v is not ErrCorrupt", what, err)
	}
}

// FuzzDecodeIndex: index entries and per-message states decode without a
// panic, and whatever decodes re-encodes to the same value.
func FuzzDecodeIndex(f *testing.F) {
	f.Add(EncodeIndex(Index{Persistent: true, Size: 1234, PubMs: 1700000000000, TTL: -1, Prio: 3}))
	f.Add(EncodeIndex(Index{}))
	f.Add(EncodeState(7))
	f.Add(EncodeStateDue(2, 1700000000000))
	f.Add([]byte{V1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := DecodeIndex(b)
		mustCorrupt(t, "index", err)
		if err == nil {
			if y, err := DecodeIndex(EncodeIndex(x)); err != nil || y != x {
				t.Fatalf("index round trip: %+v -> %+v, %v", x, y, err)
			}
		}
		n, due, err := DecodeState(b)
		mustCorrupt(t, "state", err)
		if err == nil {
			again := EncodeState(n)
			if b[0] == StateV2 {
				again = EncodeStateDue(n, due)
			}
			if n2, due2, err := DecodeState(again); err != nil || n2 != n || due2 != due {
				t.Fatalf("state round trip: %d %d -> %d %d, %v", n, due, n2, due2, err)
			}
		}
	})
}

// FuzzDecodeMeta: the metadata records (definitions, users, permissions,
// schemas, delayed publishes) decode without a panic, and whatever decodes
// re-encodes to a record that decodes to the same value.
func FuzzDecodeMeta(f *testing.F) {
	args := message.Table{"x-max-length": int64(10), "x-dead-letter-exchange": "dlx"}
	for _, seed := range [][]byte{
		must(EncodeExchangeDef(ExchangeDef{VHost: "/", Name: "ex", Type: "topic", Durable: true, Args: args})),
		must(EncodeQueueDef(QueueDef{VHost: "/", Name: "q", ID: 42, Args: args})),
		must(EncodeBindingDef(BindingDef{VHost: "/", Source: "ex", Dest: "q", Key: "a.#", Args: args})),
		EncodeUserDef(UserDef{Name: "guest", Salt: []byte{1, 2, 3, 4}, Hash: []byte("hash"), Tags: []string{"administrator"}, LoopbackOnly: true}),
		EncodePermission(PermissionDef{User: "guest", VHost: "/", Configure: ".*", Write: ".*", Read: ".*"}),
		EncodeSchemaDef(SchemaDef{VHost: "/", Name: "s", Doc: []byte(`{"type":"object"}`)}),
		EncodeDelayed("/", must(EncodeRecord(sampleMessage(), 1))),
		{V1},
		{},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, err := DecodeExchangeDef(b); err == nil {
			roundTrip(t, "exchange", d, must(EncodeExchangeDef(d)), DecodeExchangeDef)
		} else {
			mustCorrupt(t, "exchange", err)
		}
		if d, err := DecodeQueueDef(b); err == nil {
			roundTrip(t, "queue", d, must(EncodeQueueDef(d)), DecodeQueueDef)
		} else {
			mustCorrupt(t, "queue", err)
		}
		if d, err := DecodeBindingDef(b); err == nil {
			roundTrip(t, "binding", d, must(EncodeBindingDef(d)), DecodeBindingDef)
		} else {
			mustCorrupt(t, "binding", err)
		}
		if u, err := DecodeUserDef(b); err == nil {
			roundTrip(t, "user", u, EncodeUserDef(u), DecodeUserDef)
		} else {
			mustCorrupt(t, "user", err)
		}
		if p, err := DecodePermission(b); err == nil {
			roundTrip(t, "permission", p, EncodePermission(p), DecodePermission)
		} else {
			mustCorrupt(t, "permission", err)
		}
		if s, err := DecodeSchemaDef(b); err == nil {
			roundTrip(t, "schema", s, EncodeSchemaDef(s), DecodeSchemaDef)
		} else {
			mustCorrupt(t, "schema", err)
		}
		if vhost, rec, err := DecodeDelayed(b); err == nil {
			v2, rec2, err := DecodeDelayed(EncodeDelayed(vhost, rec))
			if err != nil || v2 != vhost || !bytes.Equal(rec2, rec) {
				t.Fatalf("delayed round trip: %q -> %q, %v", vhost, v2, err)
			}
		} else {
			mustCorrupt(t, "delayed", err)
		}
	})
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// roundTrip checks that enc decodes to a value printing as v does (tables
// and slices compare by content).
func roundTrip[T any](t *testing.T, what string, v T, enc []byte, decode func([]byte) (T, error)) {
	t.Helper()
	got, err := decode(enc)
	if err != nil {
		t.Fatalf("%s: decode re-encoded: %v", what, err)
	}
	if a, b := fmt.Sprintf("%+v", v), fmt.Sprintf("%+v", got); a != b {
		t.Fatalf("%s round trip changed the value:\n%s\n%s", what, a, b)
	}
}

// FuzzDecodeScalars: the values of scalars.go, in either layout, decode
// without a panic, and whatever decodes re-encodes, in the current
// layout, to the same value.
func FuzzDecodeScalars(f *testing.F) {
	for _, seed := range [][]byte{EncodeQueueIDCounter(300), []byte("300"), EncodeQueueIDFlags(true), {1}, {0},
		EncodeLimit(-1), []byte("-1"), EncodePolicy([]byte(`{"a":1}`)), []byte(`{}`), {V1, 0xff}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if id, _, err := DecodeQueueIDCounter("x", b); err == nil {
			if id2, old, err := DecodeQueueIDCounter("x", EncodeQueueIDCounter(id)); err != nil || id2 != id || old {
				t.Fatalf("counter round trip: %d -> %d %v %v", id, id2, old, err)
			}
		} else {
			mustCorrupt(t, "counter", err)
		}
		if d, _, err := DecodeQueueIDFlags(b); err == nil {
			if d2, old, err := DecodeQueueIDFlags(EncodeQueueIDFlags(d)); err != nil || d2 != d || old {
				t.Fatalf("flags round trip: %v -> %v %v %v", d, d2, old, err)
			}
		} else {
			mustCorrupt(t, "flags", err)
		}
		if n, _, err := DecodeLimit(b); err == nil {
			if n2, old, err := DecodeLimit(EncodeLimit(n)); err != nil || n2 != n || old {
				t.Fatalf("limit round trip: %d -> %d %v %v", n, n2, old, err)
			}
		} else {
			mustCorrupt(t, "limit", err)
		}
		if doc, _, err := DecodePolicy(b); err == nil {
			if doc2, old, err := DecodePolicy(EncodePolicy(doc)); err != nil || !bytes.Equal(doc2, doc) || old {
				t.Fatalf("policy round trip: %q -> %q %v %v", doc, doc2, old, err)
			}
		} else {
			mustCorrupt(t, "policy", err)
		}
	})
}
