package pebblestore

import (
	"sync"

	"github.com/sluicemq/sluice/internal/store"
)

// Read-ahead for consumers draining a backlog. They Get a queue's records
// in seq order; a point lookup each would read an index block and a data
// block from the file system per message. Instead, when a Get follows the
// previous one of the same queue, the store reads the next records with one
// iterator and keeps them in a small per-queue window, handing each out
// (and forgetting it) when it is asked for.
//
// Message records never change, so the only way a window can go stale is a
// delete: Apply drops deleted seqs from the windows after its commit and
// bumps the queue's generation, and a read-ahead started before that commit
// is thrown away instead of installed.

const (
	readaheadRecords = 128     // records read ahead at a time
	readaheadBytes   = 1 << 20 // bytes one read-ahead may hold
	readaheadTotal   = 8 << 20 // bytes all windows may hold together
	// readaheadSlab is the buffer read-ahead records are copied into, many
	// to one allocation; a buffer lives until its last record is dropped.
	readaheadSlab = 64 << 10
)

type window struct {
	first uint64   // seq of recs[0]
	recs  [][]byte // nil where handed out or deleted
	bytes int
}

type readahead struct {
	mu    sync.Mutex
	wins  map[store.QueueID]*window
	gen   map[store.QueueID]uint64
	last  map[store.QueueID]uint64 // seq of the queue's last Get
	bytes int
}

func newReadahead() *readahead {
	return &readahead{
		wins: make(map[store.QueueID]*window),
		gen:  make(map[store.QueueID]uint64),
		last: make(map[store.QueueID]uint64),
	}
}

// take returns the record of (q, seq) from the queue's window, removing
// it. sequential reports whether seq follows the queue's previous Get, the
// sign of a reader worth reading ahead for; gen is the queue's generation
// to pass to install.
func (r *readahead) take(q store.QueueID, seq uint64) (rec []byte, sequential bool, gen uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	prev, seen := r.last[q]
	r.last[q] = seq
	gen = r.gen[q]
	if w := r.wins[q]; w != nil && seq >= w.first && seq-w.first < uint64(len(w.recs)) {
		i := seq - w.first
		if rec = w.recs[i]; rec != nil {
			w.recs[i] = nil
			r.shrinkLocked(q, w, len(rec))
			return rec, false, gen
		}
	}
	return nil, seen && seq == prev+1, gen
}

// install makes recs (records first, first+1, …) the queue's window, unless
// the queue changed since gen or the windows are full.
func (r *readahead) install(q store.QueueID, first uint64, recs [][]byte, size int, gen uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gen[q] != gen || len(recs) == 0 {
		return
	}
	if old := r.wins[q]; old != nil {
		r.bytes -= old.bytes
	}
	if r.bytes+size > readaheadTotal {
		delete(r.wins, q)
		return
	}
	r.wins[q] = &window{first: first, recs: recs, bytes: size}
	r.bytes += size
}

// shrinkLocked accounts for n bytes leaving w and drops an empty window.
func (r *readahead) shrinkLocked(q store.QueueID, w *window, n int) {
	w.bytes -= n
	r.bytes -= n
	if w.bytes == 0 {
		delete(r.wins, q)
	}
}

// forget drops from the windows whatever the committed batch deleted and
// bumps the generation of every queue it deleted from.
func (r *readahead) forget(b *store.Batch) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, op := range b.Ops {
		var from, end uint64
		switch op.Kind {
		case store.OpDeleteMessage:
			from, end = op.Seq, op.Seq+1
		case store.OpDeleteRange:
			from, end = op.Seq, op.End
		case store.OpSetFloor:
			from, end = 0, op.Seq
		case store.OpDropQueue:
			from, end = 0, ^uint64(0)
			delete(r.last, op.Queue)
		default:
			continue
		}
		r.gen[op.Queue]++
		w := r.wins[op.Queue]
		if w == nil {
			continue
		}
		for seq := max(from, w.first); seq < end && seq-w.first < uint64(len(w.recs)); seq++ {
			if rec := w.recs[seq-w.first]; rec != nil {
				w.recs[seq-w.first] = nil
				r.shrinkLocked(op.Queue, w, len(rec))
				if r.wins[op.Queue] == nil {
					break
				}
			}
		}
	}
}
