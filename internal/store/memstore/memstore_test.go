package memstore

import (
	"bytes"
	"errors"
	"testing"

	"github.com/sluicemq/sluice/internal/store"
)

func TestBasic(t *testing.T) {
	s := New()
	var b store.Batch
	for seq := uint64(1); seq <= 1000; seq++ {
		b.PutMessage(7, seq, []byte{byte(seq)})
	}
	b.SetFloor(7, 1)
	if err := s.Apply(&b, true); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	for seq := uint64(1); seq <= 600; seq++ {
		b.DeleteMessage(7, seq)
	}
	b.SetFloor(7, 601)
	if err := s.Apply(&b, false); err != nil {
		t.Fatal(err)
	}
	floor, err := s.Floor(7)
	if err != nil || floor != 601 {
		t.Fatalf("Floor = %d, %v; want 601", floor, err)
	}
	want := uint64(601)
	err = s.Scan(7, floor, func(seq uint64, rec []byte) bool {
		if seq != want || !bytes.Equal(rec, []byte{byte(seq)}) {
			t.Fatalf("Scan got seq %d rec %v, want seq %d", seq, rec, want)
		}
		want++
		return true
	})
	if err != nil || want != 1001 {
		t.Fatalf("Scan ended at %d, %v; want 1001", want, err)
	}
	if last, _ := s.LastSeq(7); last != 1000 {
		t.Fatalf("LastSeq = %d, want 1000", last)
	}
	if _, err := s.Get(7, 5); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get acked message: %v, want ErrNotFound", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(7, 700); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Get after Close: %v, want ErrClosed", err)
	}
}
