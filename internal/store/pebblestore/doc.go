// Package pebblestore is Sluice's durable store.Store on Pebble
// (github.com/cockroachdb/pebble/v2).
//
// # Data directory
//
//	<dir>/
//	  LOCK      flock'd while open: a second Open of <dir> fails (ErrLocked)
//	  FORMAT    "sluice-store-format 4\n", written atomically (temp, fsync,
//	            rename, fsync dir); format 3 is upgraded in place by Open
//	            (upgrade.go), formats 1 and 2 and unknown ones are refused
//	  pebble/   the Pebble database (its WAL, MANIFEST, sstables and blob
//	            files)
//
// # Key layout
//
// Every key starts with one byte naming its keyspace; numbers are big-endian
// so byte order is numeric order (the due time has its sign bit flipped so
// negative times sort first). A queue's messages are one contiguous key range
// in seq order, each seq's index entry right before its record:
//
//	keyspace  key (bytes)                                   value
//	--------  --------------------------------------------  -----------------------
//	index     'q' | queue u64 | seq u64 | 0           (18)   index entry (written once, with its record)
//	message   'q' | queue u64 | seq u64 | 1           (18)   record (written once)
//	state     's' | queue u64 | seq u64               (17)   state bytes (mutable)
//	delay     'd' | due i64^1<<63 | queue | seq       (25)   empty
//	floor     'f' | queue u64                          (9)   floor u64 | cleared u64
//	meta      'x' | key bytes                       (1+n)   value
//	body      'b' | id u64 | kind u8                  (10)   kind 0: refs (queue u64 | seq u64, each);
//	                                                         kind 1: the shared body (bodies.go)
//
// (Format 3 kept records and index entries in an 'm' keyspace grouped in
// blocks of 1024 seqs, index entries first; Open moves them here.)
//
// Why seq-major: a publisher appends to a queue, so every memtable flush
// writes that queue's keys above all the keys of its earlier flushes. The
// sstables of successive flushes never overlap, and Pebble moves them down
// the LSM (or keeps them as one L0 sublevel) instead of rewriting the
// backlog. With the index entries of a block before its records (format
// 3), a flush that ended mid-block overlapped the next one, and Pebble
// rewrote the whole backlog again and again.
//
// Why value separation (valueSeparation in pebblestore.go): a flush writes
// records of 256 bytes or more into blob files and keeps only a handle in
// the sstable. Compactions then move keys and handles, not bodies, and an
// iterator reads a separated value only when asked for it. ScanIndex
// iterates the queue's keys and skips record keys without reading their
// values, so a restart's cost grows with the number of messages, not with
// their size. Scan, Get and the read-ahead skip index keys. A blob file is
// deleted once no sstable references it, so a drained queue gives its disk
// space back once its tombstones are compacted.
//
//	one queue's message keys, in key (= seq, then kind) order:
//
//	'q'|q|1                 'q'|q|cleared        'q'|q|floor          'q'|q|last
//	   ├──────────────────────────┼──────────────────────┼────────────────────┤
//	   │ acked: one range delete  │ acked: SingleDeletes │ live messages      │
//	   └──────────────────────────┴──────────────────────┴────────────────────┘
//	                                                     ▲ Scan seeks here,
//	                                                       never from seq 0
//
// A shared body (store.Bodies) is put once with its refs and deleted only
// by SweepBodies, which decides on one Pebble snapshot: a ref is live while
// its record key exists at or above its queue's floor. Acks, range deletes,
// purges and drops never touch the body keyspace. The keyspace is new in
// format 4 and an older store simply has none, so FORMAT stays 4.
//
// # Upgrade from format 3
//
// Open of a format 3 directory moves every live 'm' key to its 'q' key in
// synced batches (at most 8192 keys or 8 MiB each) that put the new keys and
// delete the old ones atomically, so a crash leaves each message at exactly
// one of its keys and the next Open resumes with what is left. Then it
// range-deletes and compacts the 'm' keyspace and only then rewrites FORMAT
// to 4. The upgrade reads and writes the backlog once (logged at Info).
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
//     acked prefix [cleared, floor) of messages and index entries (one range)
//     and states (another), so a reader skips it in one step; cleared is
//     persisted next to the floor;
//   - when a queue has drained (no message at or above its floor) a background
//     goroutine compacts its fully acked range, so the tombstones go away and
//     the blob files of its records, no longer referenced, are deleted;
//   - the memtable is at most 64 MiB.
//
// # Durability and errors
//
// Apply(sync=true) commits with pebble.Sync, otherwise pebble.NoSync. Apply
// calls are serialized; grouping many publishers into one synced Apply is the
// caller's job. Corrupt data is reported as an error wrapping store.ErrCorrupt
// that names the directory and what to do.
//
// An engine failure fences the store (fence.go): a WAL write, sync or create
// that fails (ENOSPC, EIO, the directory deleted: a WAL whose link count
// dropped to 0), a MANIFEST failure Pebble reports through Fatalf, a
// background flush the disk refuses. The WAL failure never reaches Pebble,
// which would panic on it; the batch that met it and every later write fail
// with store.ErrFenced wrapping the cause, reads go on, and Options.OnFence
// hears of it once. Restart the process; Pebble replays what was synced.
//
// Before Pebble opens, Open checks the newest WAL (walcheck.go): a torn final
// record is cut with a warning, damage followed by intact records refuses to
// open (ErrCorrupt, naming the file and offset) unless Options.RepairWAL.
//
// # Goroutines and concurrency
//
// Open runs a format upgrade, if any, on the caller's goroutine before it
// returns. A Store owns one goroutine, the compactor, started by Open and
// stopped and waited for by Close (Pebble runs its own flush and compaction goroutines,
// also stopped by Close). All methods are safe for concurrent use; a Scan's fn
// may call the store.
package pebblestore
