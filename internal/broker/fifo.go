package broker

import "sort"

// fifoChunk is the number of entries in one chunk of an entryFifo (24 KiB).
const fifoChunk = 1024

// entryFifo is a queue of entries kept in fixed-size chunks. A backlog of
// millions grows one chunk at a time: a slice grown by append would copy
// itself at every growth and hold up to twice its entries while doing so,
// and the ready entries are most of a backlogged broker's heap.
//
// Every chunk but the last is full; the live entries are chunks[0][head:]
// followed by the rest, so the i-th live entry is found by arithmetic.
type entryFifo struct {
	chunks [][]entry
	head   int // entries of chunks[0] already popped
	n      int
}

func (f *entryFifo) len() int { return f.n }

func (f *entryFifo) push(e entry) {
	last := len(f.chunks) - 1
	if last < 0 || len(f.chunks[last]) == fifoChunk {
		f.chunks = append(f.chunks, make([]entry, 0, fifoChunk))
		last++
	}
	f.chunks[last] = append(f.chunks[last], e)
	f.n++
}

// at returns the i-th live entry (0 is the front); i < len().
func (f *entryFifo) at(i int) *entry {
	i += f.head
	return &f.chunks[i/fifoChunk][i%fifoChunk]
}

// popFront removes and returns the front entry; the fifo must not be empty.
func (f *entryFifo) popFront() entry {
	c := f.chunks[0]
	e := c[f.head]
	c[f.head] = entry{}
	f.head++
	f.n--
	if f.head == len(c) {
		f.head = 0
		if len(f.chunks) == 1 {
			f.chunks[0] = c[:0] // keep the one chunk for the next pushes
		} else {
			f.chunks[0] = nil
			f.chunks = f.chunks[1:]
		}
	}
	return e
}

// find returns the live entry with seq; entries are in ascending seq order.
func (f *entryFifo) find(seq uint64) (*entry, bool) {
	i := sort.Search(f.n, func(i int) bool { return f.at(i).seq >= seq })
	if i < f.n && f.at(i).seq == seq {
		return f.at(i), true
	}
	return nil, false
}

// all calls fn with every live entry, front first.
func (f *entryFifo) all(fn func(e entry)) {
	for ci, c := range f.chunks {
		if ci == 0 {
			c = c[f.head:]
		}
		for _, e := range c {
			fn(e)
		}
	}
}
