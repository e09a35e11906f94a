// Package pebblestore is Sluice's durable store.Store on Pebble
// (github.com/cockroachdb/pebble/v2).
//
// # Data directory
//
//	<dir>/
//	  LOCK      flock'd while open: a second Open of <dir> fails (ErrLocked)
//	  FORMAT    "sluice-store-format 3\n", written atomically (temp, fsync,
//	            rename, fsync dir); another or unknown format is refused
//	            (formats 1 and 2, of earlier key layouts, are not upgraded)
//	  pebble/   the Pebble database (its WAL, MANIFEST and sstables)
//
// # Key layout
//
// Every key starts with one byte naming its keyspace; numbers are big-endian
// so byte order is numeric order (the due time has its sign bit flipped so
// negative times sort first). A queue's messages are one contiguous key range
// and within it seq order is key order, grouped in blocks of 1024 seqs whose
// index entries come before their records:
//
//	keyspace  key (bytes)                                           value
//	--------  ----------------------------------------------------  -----------------------
//	message   'm' | queue u64 | seq>>10 u64 | 1 | seq u64     (26)   record (written once)
//	index     'm' | queue u64 | seq>>10 u64 | 0 | seq u64     (26)   index entry (written once, with its record)
//	state     's' | queue u64 | seq u64                       (17)   state bytes (mutable)
//	delay     'd' | due i64^1<<63 | queue | seq               (25)   empty
//	floor     'f' | queue u64                                  (9)   floor u64 | cleared u64
//	meta      'x' | key bytes                               (1+n)   value
//
// ScanIndex reads a block's index entries and seeks over its records to the
// next block, so a restart reads little more than the index entries; Scan
// and Get read records and pass over index entries. Index entries and
// records of the same seqs sort together, so a memtable flush of a growing
// queue does not span a range that every earlier record falls in.
//
//	one queue's message keys, in key (= block, then seq) order:
//
//	'm'|q|1                 'm'|q|cleared        'm'|q|floor          'm'|q|last
//	   ├──────────────────────────┼──────────────────────┼────────────────────┤
//	   │ acked: one range delete  │ acked: SingleDeletes │ live messages      │
//	   └──────────────────────────┴──────────────────────┴────────────────────┘
//	                                                     ▲ Scan seeks here,
//	                                                       never from seq 0
//
// # Tombstones
//
// Draining a queue leaves a tombstone per acked message, and a reader that
// starts at the queue's first key walks through all of them (seconds after
// millions of acks). So:
//
//   - acks are SingleDelete (each message and index key is written once), carried in the
//     caller's next, usually unsynced, batch;
//   - the ack floor is persisted and Scan always seeks from the floor given;
//   - when a SetFloor moves the floor rangeDeleteEvery (4096) or more past the
//     last range delete of the queue, the same batch also range-deletes the
//     acked prefix [cleared, floor) of messages, index entries and states (per
//     block at its ends), so a reader skips
//     it in one step; cleared is persisted next to the floor;
//   - when a queue has drained (no message at or above its floor) a background
//     goroutine compacts its fully acked range, so the tombstones and the disk
//     space go away;
//   - the memtable is at most 64 MiB.
//
// # Durability and errors
//
// Apply(sync=true) commits with pebble.Sync, otherwise pebble.NoSync. Apply
// calls are serialized; grouping many publishers into one synced Apply is the
// caller's job. Corrupt data is reported as an error wrapping store.ErrCorrupt
// that names the directory and what to do. A write error Pebble cannot recover
// from (the WAL could not be written or synced: ENOSPC, EIO) is returned by
// Apply and fences the store: every later call returns an error wrapping both
// store.ErrClosed and the cause, because Pebble may already show the failed
// batch to readers. Restart the process; Pebble replays what was synced.
//
// # Goroutines and concurrency
//
// A Store owns one goroutine, the compactor, started by Open and stopped and
// waited for by Close (Pebble runs its own flush and compaction goroutines,
// also stopped by Close). All methods are safe for concurrent use; a Scan's fn
// may call the store.
package pebblestore
