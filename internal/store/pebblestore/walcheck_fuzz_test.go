package pebblestore

import (
	"bytes"
	"io"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/sluicemq/sluice/internal/store"
)

// walSeed returns the newest WAL of a store that applied a few batches,
// one of them larger than a WAL block, and its log number.
func walSeed(f *testing.F) ([]byte, uint32) {
	mem := vfs.NewMem()
	s, err := Open("/data", testOptions(mem))
	if err != nil {
		f.Fatal(err)
	}
	for i := range 5 {
		if err := s.Apply(batchOf(i), true); err != nil {
			f.Fatal(err)
		}
	}
	var big store.Batch
	big.PutMessage(3, 1, bytes.Repeat([]byte("y"), 40<<10))
	if err := s.Apply(&big, true); err != nil {
		f.Fatal(err)
	}
	names, _ := mem.List("/data/pebble")
	var newest string
	for _, n := range names {
		if filepath.Ext(n) == ".log" && n > newest {
			newest = n
		}
	}
	file, err := mem.Open("/data/pebble/" + newest)
	if err != nil {
		f.Fatal(err)
	}
	data, _ := io.ReadAll(file)
	file.Close()
	var num uint32
	for _, c := range newest[:len(newest)-len(".log")] {
		num = num*10 + uint32(c-'0')
	}
	return data, num
}

// FuzzCheckWAL: the WAL check never panics on any content, reports damage
// inside the file, and the file cut where it says is clean (so a repaired
// directory starts without a second report).
func FuzzCheckWAL(f *testing.F) {
	data, num := walSeed(f)
	f.Add(data, num)
	f.Add(data[:len(data)-7], num)
	flipped := bytes.Clone(data)
	for i := len(flipped) / 2; i < len(flipped)/2+16; i++ {
		flipped[i] ^= 0xff
	}
	f.Add(flipped, num)
	f.Add([]byte{}, uint32(1))
	f.Fuzz(func(t *testing.T, b []byte, logNum uint32) {
		d, damaged := checkWAL(b, logNum)
		if !damaged {
			return
		}
		if d.offset < 0 || d.offset > int64(len(b)) || d.droppedBytes() <= 0 {
			t.Fatalf("damage at %d in %d bytes", d.offset, len(b))
		}
		if again, still := checkWAL(b[:d.offset], logNum); still {
			t.Fatalf("cut at %d, still damaged at %d", d.offset, again.offset)
		}
	})
}
