package records

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// goldenShared is the shared record of golden["record"] naming body 300,
// and the body it shares: the layout a fanout writes (doc.go).
const goldenShared = "02010000018bcfe5687b02657802726bac02"

func TestSharedRecordGolden(t *testing.T) {
	rec, _ := hex.DecodeString(golden["record"])
	shared, body, err := SplitShared(rec, 300)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(shared); got != goldenShared {
		t.Fatalf("shared record = %s, want %s", got, goldenShared)
	}
	if !bytes.Equal(body, rec[len(goldenShared)/2-2:]) {
		t.Fatalf("body = %x, want the record's tail", body)
	}
	if !IsShared(shared) || IsShared(rec) {
		t.Fatal("IsShared tells the layouts apart wrong")
	}
	if id, err := SharedBodyID(shared); err != nil || id != 300 {
		t.Fatalf("SharedBodyID = %d, %v", id, err)
	}
	joined, err := JoinShared(shared, body)
	if err != nil || !bytes.Equal(joined, rec) {
		t.Fatalf("JoinShared = %x, %v; want the record %x", joined, err, rec)
	}
	if _, _, err := SplitShared(shared, 1); err == nil {
		t.Fatal("a shared record split again")
	}
}

func TestSharedRecordDamage(t *testing.T) {
	rec, _ := hex.DecodeString(golden["record"])
	shared, body, _ := SplitShared(rec, 300)
	for i := range len(shared) {
		if _, err := JoinShared(shared[:i], body); err == nil {
			t.Fatalf("a shared record cut to %d bytes joined", i)
		}
	}
	for _, cut := range []int{0, 3, 6} {
		if _, err := JoinShared(shared, body[:cut]); err == nil {
			t.Fatalf("a body cut to %d bytes joined", cut)
		}
	}
}
