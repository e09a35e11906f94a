package broker

// A queue's in-memory index: one small entry per message.

// entry is what a queue keeps in memory of one message (24 bytes).
type entry struct {
	seq        uint64
	expires    int64  // unix ms after which the message is dead; 0: never
	size       uint32 // body bytes
	deliveries uint16 // times delivered (saturating)
	flags      uint8
	priority   uint8 // level in a priority queue (clamped to x-max-priority)
}

const (
	entryRedelivered uint8 = 1 << iota // delivered before: Redelivered on the next delivery
	entryPersistent                    // delivery-mode 2
	entryState                         // a per-message state record exists in the store
	entryCached                        // the record may be in the body cache
)

// readyIndex holds a queue's ready entries: one readyList per priority
// level (a single level unless the queue has x-max-priority); the highest
// non-empty level delivers first, each level in seq order.
type readyIndex struct {
	levels []readyList // grown on demand
	n      int
	bytes  uint64
}

func (r *readyIndex) len() int { return r.n }

func (r *readyIndex) level(p uint8) *readyList {
	if int(p) >= len(r.levels) {
		r.levels = append(r.levels, make([]readyList, int(p)+1-len(r.levels))...)
	}
	return &r.levels[p]
}

// top returns the highest non-empty level, nil when all are empty.
func (r *readyIndex) top() *readyList {
	for i := len(r.levels) - 1; i >= 0; i-- {
		if r.levels[i].len() > 0 {
			return &r.levels[i]
		}
	}
	return nil
}

// push appends a new entry; its seq is above every entry of its level.
func (r *readyIndex) push(e entry) {
	r.level(e.priority).push(e)
	r.n++
	r.bytes += uint64(e.size)
}

// putBack returns an entry to its place by seq.
func (r *readyIndex) putBack(e entry) {
	r.level(e.priority).putBack(e)
	r.n++
	r.bytes += uint64(e.size)
}

// pop removes the next entry to deliver: the lowest seq of the highest
// priority.
func (r *readyIndex) pop() (entry, bool) {
	l := r.top()
	if l == nil {
		return entry{}, false
	}
	e, _ := l.pop()
	r.n--
	r.bytes -= uint64(e.size)
	return e, true
}

// peek returns the entry pop would return.
func (r *readyIndex) peek() (entry, bool) {
	if l := r.top(); l != nil {
		return l.peek()
	}
	return entry{}, false
}

// minSeq returns the lowest ready seq over all levels.
func (r *readyIndex) minSeq() (uint64, bool) {
	var m uint64
	found := false
	for i := range r.levels {
		if s, ok := r.levels[i].minSeq(); ok && (!found || s < m) {
			m, found = s, true
		}
	}
	return m, found
}

// takeAll empties the index and returns its entries in no particular order.
func (r *readyIndex) takeAll() []entry {
	out := make([]entry, 0, r.n)
	for i := range r.levels {
		out = append(out, r.levels[i].takeAll()...)
	}
	*r = readyIndex{}
	return out
}

// find returns the ready entry with seq.
func (r *readyIndex) find(seq uint64) (*entry, bool) {
	for i := range r.levels {
		if e, ok := r.levels[i].find(seq); ok {
			return e, true
		}
	}
	return nil, false
}

// removeSeqs takes the ready entries whose seqs are in want out of the
// index and returns them.
func (r *readyIndex) removeSeqs(want map[uint64]bool) []entry {
	var out []entry
	for i := range r.levels {
		out = append(out, r.levels[i].removeSeqs(want)...)
	}
	for _, e := range out {
		r.n--
		r.bytes -= uint64(e.size)
	}
	return out
}

// readyList holds one priority level's ready entries in seq order: fifo has the
// entries that were never handed out, in the order the write pipeline added
// them (ascending seq); back is a min-heap of entries returned by nack,
// reject or a closed channel, which go before later fifo entries.
type readyList struct {
	fifo  entryFifo
	back  heap[entry]
	bytes uint64
}

func (r *readyList) len() int { return r.fifo.len() + r.back.len() }

// push appends a new entry; its seq is above every entry of fifo.
func (r *readyList) push(e entry) {
	r.fifo.push(e)
	r.bytes += uint64(e.size)
}

// putBack returns an entry to its place by seq.
func (r *readyList) putBack(e entry) {
	r.back.push(e)
	r.bytes += uint64(e.size)
}

// backFirst says whether the lowest seq is in back rather than in fifo;
// false when the list is empty.
func (r *readyList) backFirst() bool {
	return r.back.len() > 0 && (r.fifo.len() == 0 || r.back.peek().seq < r.fifo.at(0).seq)
}

// pop removes the entry with the lowest seq.
func (r *readyList) pop() (entry, bool) {
	var e entry
	switch {
	case r.backFirst():
		e = r.back.pop()
	case r.fifo.len() > 0:
		e = r.fifo.popFront()
	default:
		return entry{}, false
	}
	r.bytes -= uint64(e.size)
	return e, true
}

// peek returns the entry with the lowest seq without removing it.
func (r *readyList) peek() (entry, bool) {
	switch {
	case r.backFirst():
		return r.back.peek(), true
	case r.fifo.len() > 0:
		return *r.fifo.at(0), true
	}
	return entry{}, false
}

// minSeq returns the lowest ready seq.
func (r *readyList) minSeq() (uint64, bool) {
	e, ok := r.peek()
	return e.seq, ok
}

// takeAll empties the list and returns its entries in no particular order.
func (r *readyList) takeAll() []entry {
	out := make([]entry, 0, r.len())
	r.fifo.all(func(e entry) { out = append(out, e) })
	out = append(out, r.back.items...)
	*r = readyList{}
	return out
}

// heap is a binary min-heap ordered by seq.
type heap[T interface{ entry | uint64 }] struct {
	items []T
}

func seqOf[T interface{ entry | uint64 }](v T) uint64 {
	switch x := any(v).(type) {
	case entry:
		return x.seq
	case uint64:
		return x
	}
	return 0
}

func (h *heap[T]) len() int { return len(h.items) }
func (h *heap[T]) peek() T  { return h.items[0] }

func (h *heap[T]) push(v T) {
	h.items = append(h.items, v)
	i := len(h.items) - 1
	for i > 0 {
		p := (i - 1) / 2
		if seqOf(h.items[p]) <= seqOf(h.items[i]) {
			break
		}
		h.items[p], h.items[i] = h.items[i], h.items[p]
		i = p
	}
}

func (h *heap[T]) pop() T {
	top := h.items[0]
	last := len(h.items) - 1
	h.items[0] = h.items[last]
	var zero T
	h.items[last] = zero
	h.items = h.items[:last]
	i := 0
	for {
		l, m := 2*i+1, i
		if l < last && seqOf(h.items[l]) < seqOf(h.items[m]) {
			m = l
		}
		if l+1 < last && seqOf(h.items[l+1]) < seqOf(h.items[m]) {
			m = l + 1
		}
		if m == i {
			return top
		}
		h.items[i], h.items[m] = h.items[m], h.items[i]
		i = m
	}
}
