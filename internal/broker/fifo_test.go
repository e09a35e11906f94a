package broker

import "testing"

// TestEntryFifoAgainstSlice drives an entryFifo and a plain slice with the
// same pushes and pops across chunk boundaries and compares every view.
func TestEntryFifoAgainstSlice(t *testing.T) {
	var f entryFifo
	var want []entry
	next := uint64(1)
	check := func(step string) {
		t.Helper()
		if f.len() != len(want) {
			t.Fatalf("%s: len %d, want %d", step, f.len(), len(want))
		}
		for i, e := range want {
			if got := *f.at(i); got != e {
				t.Fatalf("%s: at(%d) = %+v, want %+v", step, i, got, e)
			}
		}
		var all []entry
		f.all(func(e entry) { all = append(all, e) })
		if len(all) != len(want) {
			t.Fatalf("%s: all gave %d entries, want %d", step, len(all), len(want))
		}
		for _, e := range []uint64{0, next, next + 5} {
			if _, ok := f.find(e); ok {
				t.Fatalf("%s: found seq %d, which is not there", step, e)
			}
		}
		if len(want) > 0 {
			for _, i := range []int{0, len(want) / 2, len(want) - 1} {
				e, ok := f.find(want[i].seq)
				if !ok || e.seq != want[i].seq {
					t.Fatalf("%s: find(%d) = %v %v", step, want[i].seq, e, ok)
				}
			}
		}
	}
	// Rounds of pushes and pops of sizes around the chunk size, so the
	// head and the tail cross chunk boundaries in every combination.
	for round, n := range []struct{ push, pop int }{
		{fifoChunk - 1, 0}, {2, 1}, {fifoChunk, fifoChunk}, {3*fifoChunk + 7, fifoChunk + 3},
		{0, 2*fifoChunk + 4}, {5, 5}, {fifoChunk * 2, 1}, {0, fifoChunk*2 + 4},
	} {
		for range n.push {
			e := entry{seq: next, size: uint32(next % 97)}
			next += 2 // gaps, so find of a missing seq between entries is checked
			f.push(e)
			want = append(want, e)
		}
		for range n.pop {
			if got := f.popFront(); got != want[0] {
				t.Fatalf("round %d: popFront = %+v, want %+v", round, got, want[0])
			}
			want = want[1:]
		}
		check("round " + string(rune('0'+round)))
	}
	for len(want) > 0 {
		if got := f.popFront(); got != want[0] {
			t.Fatalf("draining: popFront = %+v, want %+v", got, want[0])
		}
		want = want[1:]
	}
	check("drained")
	if f.len() != 0 || len(f.chunks) != 1 {
		t.Fatalf("emptied fifo: len %d, %d chunks; want 0 and 1 kept for reuse", f.len(), len(f.chunks))
	}
}
