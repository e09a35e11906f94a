package broker

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
	f.Add(encodeIndex(msgIndex{persistent: true, size: 1234, pubMs: 1700000000000, ttl: -1, prio: 3}))
	f.Add(encodeIndex(msgIndex{}))
	f.Add(encodeState(7))
	f.Add(encodeStateDue(2, 1700000000000))
	f.Add([]byte{recordV1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := decodeIndex(b)
		mustCorrupt(t, "index", err)
		if err == nil {
			if y, err := decodeIndex(encodeIndex(x)); err != nil || y != x {
				t.Fatalf("index round trip: %+v -> %+v, %v", x, y, err)
			}
		}
		n, due, err := decodeState(b)
		mustCorrupt(t, "state", err)
		if err == nil {
			again := encodeState(n)
			if b[0] == stateV2 {
				again = encodeStateDue(n, due)
			}
			if n2, due2, err := decodeState(again); err != nil || n2 != n || due2 != due {
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
		must(encodeExchangeDef(exchangeDef{VHost: "/", Name: "ex", Type: "topic", Durable: true, Args: args})),
		must(encodeQueueDef(queueDef{VHost: "/", Name: "q", ID: 42, Args: args})),
		must(encodeBindingDef(bindingDef{VHost: "/", Source: "ex", Dest: "q", Key: "a.#", Args: args})),
		encodeUserDef(userDef{Name: "guest", Salt: []byte{1, 2, 3, 4}, Hash: []byte("hash"), Tags: []string{"administrator"}, LoopbackOnly: true}),
		encodePermission(Permission{User: "guest", VHost: "/", Configure: ".*", Write: ".*", Read: ".*"}),
		encodeSchemaDef(schemaDef{VHost: "/", Name: "s", Doc: []byte(`{"type":"object"}`)}),
		encodeDelayed("/", must(encodeRecord(sampleMessage(), 1))),
		{recordV1},
		{},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, err := decodeExchangeDef(b); err == nil {
			roundTrip(t, "exchange", d, must(encodeExchangeDef(d)), decodeExchangeDef)
		} else {
			mustCorrupt(t, "exchange", err)
		}
		if d, err := decodeQueueDef(b); err == nil {
			roundTrip(t, "queue", d, must(encodeQueueDef(d)), decodeQueueDef)
		} else {
			mustCorrupt(t, "queue", err)
		}
		if d, err := decodeBindingDef(b); err == nil {
			roundTrip(t, "binding", d, must(encodeBindingDef(d)), decodeBindingDef)
		} else {
			mustCorrupt(t, "binding", err)
		}
		if u, err := decodeUserDef(b); err == nil {
			roundTrip(t, "user", u, encodeUserDef(u), decodeUserDef)
		} else {
			mustCorrupt(t, "user", err)
		}
		if p, err := decodePermission(b); err == nil {
			roundTrip(t, "permission", p, encodePermission(p), decodePermission)
		} else {
			mustCorrupt(t, "permission", err)
		}
		if s, err := decodeSchemaDef(b); err == nil {
			roundTrip(t, "schema", s, encodeSchemaDef(s), decodeSchemaDef)
		} else {
			mustCorrupt(t, "schema", err)
		}
		if vhost, rec, err := decodeDelayed(b); err == nil {
			v2, rec2, err := decodeDelayed(encodeDelayed(vhost, rec))
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
