package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/sluicemq/sluice/internal/store"
)

// Options configures a Store.
type Options struct {
	// FS is the file system seam; every file the store touches goes through
	// it. Tests pass a vfs.NewMem, vfs.NewCrashableMem or an errorfs wrapper.
	// nil means the operating system's file system.
	FS vfs.FS
	// Logger receives the store's and Pebble's log lines. nil discards them.
	Logger *slog.Logger
	// MemTableSize is Pebble's memtable size in bytes; 64 MiB at most, so a
	// flush (and a reopen's WAL replay) stays short.
	MemTableSize uint64
	// CacheSize is Pebble's block cache in bytes.
	CacheSize int64
	// RangeDeleteEvery is how far a queue's floor must move past its last
	// range delete before SetFloor range-deletes the acked prefix.
	RangeDeleteEvery uint64
	// CompactEvery is how far a drained queue's floor must move past the
	// point of its last compaction before it is compacted again.
	CompactEvery uint64
	// OnFence, if set, is called once, from whichever goroutine met the
	// failure, when an engine failure fences the store (fence.go); it must
	// not call the store's write methods. The store then logs nothing of its
	// own: the caller says what to do. nil: the store logs the fence.
	OnFence func(err error)
	// RepairWAL accepts the loss of everything after damage found inside
	// the newest write-ahead log when Open checks it (walcheck.go); without
	// it Open refuses such a directory.
	RepairWAL bool

	// upgradeBatchHook, if set (by tests), is called after each committed
	// batch of a format upgrade with the number of batches so far.
	upgradeBatchHook func(batches int)
	// upgradeBatchMax, if positive (in tests), is the most keys an upgrade
	// batch moves instead of the constant upgradeBatchKeys.
	upgradeBatchMax int
}

// MaxMemTableSize is the largest memtable Options allows.
const MaxMemTableSize = 64 << 20

// DefaultOptions returns the options used in production.
func DefaultOptions() Options {
	return Options{
		MemTableSize:     MaxMemTableSize,
		CacheSize:        64 << 20,
		RangeDeleteEvery: 4096,
		CompactEvery:     4096,
	}
}

// Validate reports the first invalid option.
func (o Options) Validate() error {
	switch {
	case o.MemTableSize < 1<<20 || o.MemTableSize > MaxMemTableSize:
		return fmt.Errorf("memtable size %d: want 1 MiB to %d", o.MemTableSize, MaxMemTableSize)
	case o.CacheSize < 0:
		return fmt.Errorf("cache size %d: must not be negative", o.CacheSize)
	case o.RangeDeleteEvery == 0:
		return errors.New("range delete interval must be positive")
	case o.CompactEvery == 0:
		return errors.New("compaction interval must be positive")
	}
	return nil
}

// Store is the Pebble-backed store.Store.
type Store struct {
	dir  string
	fs   vfs.FS
	opts Options
	log  *slog.Logger
	db   *pebble.DB
	lock io.Closer

	// fatal is set once Pebble reports an error it cannot continue from; the
	// store is fenced from then on.
	fatal atomic.Pointer[fatalError]

	// applyMu serializes Apply; it guards floors, the cached floor state of
	// queues touched since Open.
	applyMu sync.Mutex
	points  pointRun // commit's scratch (apply.go), guarded by applyMu
	floors  map[store.QueueID]floorState

	// mu guards closed and active (calls in flight); Close waits on idle
	// for active to drop to zero before closing Pebble.
	mu     sync.Mutex
	closed bool
	active int
	idle   *sync.Cond

	compactor *compactor
	ahead     *readahead

	rangeDeletes atomic.Uint64
	compactions  atomic.Uint64
}

var _ store.Store = (*Store)(nil)

// Open opens the store in dir, creating it if needed. It fails with ErrLocked
// when dir is already open, with ErrFormat for a format this build does not
// read, and with an error wrapping store.ErrCorrupt for damaged data.
func Open(dir string, opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	fs := opts.FS
	if fs == nil {
		fs = vfs.Default
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := makeDir(fs, dir); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := checkWALs(fs, fs.PathJoin(dir, pebbleDir), opts.RepairWAL, log); err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	lock, err := lockDir(fs, dir)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	s := &Store{dir: dir, opts: opts, log: log, lock: lock, floors: make(map[store.QueueID]floorState), ahead: newReadahead()}
	s.idle = sync.NewCond(&s.mu)
	s.fs = &fenceFS{FS: fs, s: s}
	if err := s.open(); err != nil {
		lock.Close()
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	s.compactor = startCompactor(s)
	return s, nil
}

func (s *Store) open() error {
	version, err := checkFormat(s.fs, s.dir)
	if err != nil {
		return err
	}
	cache := pebble.NewCache(s.opts.CacheSize)
	defer cache.Unref()
	po := &pebble.Options{
		FS:                 s.fs,
		Cache:              cache,
		MemTableSize:       s.opts.MemTableSize,
		FormatMajorVersion: pebble.FormatNewest, // FormatValueSeparation or later
		Logger:             pebbleLogger{log: s.log, fail: s.fail, fenced: func() bool { return s.fatal.Load() != nil }},
		EventListener:      &pebble.EventListener{BackgroundError: s.backgroundError},
	}
	po.Experimental.ValueSeparationPolicy = valueSeparation
	path := s.fs.PathJoin(s.dir, pebbleDir)
	if err := makeDir(s.fs, path); err != nil {
		return err
	}
	db, err := pebble.Open(path, po)
	if err != nil {
		return s.wrap("open pebble "+path, err)
	}
	s.db = db
	if version == upgradableVersion {
		if err := s.upgradeFrom3(); err != nil {
			db.Close()
			return fmt.Errorf("upgrade from format %d: %w", upgradableVersion, err)
		}
	}
	return nil
}

// valueSeparation is the store's Pebble value separation policy: values of
// at least MinimumSize bytes (message records) go to blob files when a
// memtable is flushed, and the sstables keep their keys with a handle. A
// compaction then moves keys and handles, not bodies, and an iterator reads
// a separated value only when asked for it, so ScanIndex steps over
// records without reading them.
//
//   - MinimumSize 256: index entries (20-40 bytes), states, floors and
//     metadata stay inline, and so do records of small messages, which
//     cost about as much to step over as their blob handle would, and whose
//     Get would pay a second read for little.
//   - MaxBlobReferenceDepth 10: an sstable may reference up to 10
//     overlapping blob files before a compaction rewrites the values it
//     references; a growing queue's flushes reference disjoint key ranges, so
//     the limit is rarely reached.
//   - RewriteMinimumAge 5 min and TargetGarbageRatio 0.3: a blob file shared
//     by a drained queue and a queue still holding a backlog keeps the
//     drained queue's bodies as garbage; once 30% of all blob bytes are
//     garbage, blob files older than 5 minutes are rewritten to give the
//     space back. A queue consumed in order empties whole blob files, which
//     are deleted without any rewrite once no sstable references them.
func valueSeparation() pebble.ValueSeparationPolicy {
	return pebble.ValueSeparationPolicy{
		Enabled:               true,
		MinimumSize:           256,
		MaxBlobReferenceDepth: 10,
		RewriteMinimumAge:     5 * time.Minute,
		TargetGarbageRatio:    0.3,
	}
}

// fatalError is an error Pebble could not continue from.
type fatalError struct {
	msg   string
	cause error
}

func (e *fatalError) Error() string { return e.msg }
func (e *fatalError) Unwrap() error { return e.cause }

// fail fences the store after an error Pebble cannot continue from.
func (s *Store) fail(e *fatalError) {
	if !s.fatal.CompareAndSwap(nil, e) {
		return
	}
	if s.opts.OnFence != nil {
		s.opts.OnFence(fmt.Errorf("%w: %s: %w", store.ErrFenced, s.dir, e))
		return
	}
	s.log.Error("store fenced after an engine failure: writes are refused; free disk space or fix the disk, then restart",
		"dir", s.dir, "err", e)
}

// backgroundError handles a failed flush or compaction. Pebble retries
// them, but one the disk refuses (full, failing, the directory gone) will
// fail again while memtables pile up until writes stall: fence instead.
// After a fence Pebble's retries are logged at debug only.
func (s *Store) backgroundError(err error) {
	switch {
	case s.fatal.Load() != nil:
		s.log.Debug("pebble background error after the fence", "err", err)
	case isDiskError(err):
		s.fence(fmt.Errorf("background write: %w", err))
	default:
		s.log.Error("pebble background error", "err", err)
	}
}

// pebbleLogger hands Pebble's log lines to slog. Pebble calls Fatalf when it
// cannot continue (a WAL or MANIFEST write failed) and expects it not to
// return; instead of exiting the process it fences the store.
type pebbleLogger struct {
	log    *slog.Logger
	fail   func(*fatalError)
	fenced func() bool
}

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Info(fmt.Sprintf(format, args...), "component", "pebble")
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	if l.fenced != nil && l.fenced() {
		// Pebble retries what failed and says so each time; the fence
		// was logged once.
		l.log.Debug(fmt.Sprintf(format, args...), "component", "pebble")
		return
	}
	l.log.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	e := &fatalError{msg: fmt.Sprintf(format, args...)}
	for _, a := range args {
		if err, ok := a.(error); ok {
			e.cause = err
			break
		}
	}
	l.fail(e)
}

// enter registers a read in flight; the caller must call exit if it
// returns nil. Reads go on after a fence.
func (s *Store) enter() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.active++
	return nil
}

// enterWrite is enter for a write, which a fence refuses.
func (s *Store) enterWrite() error {
	if err := s.Fenced(); err != nil {
		return err
	}
	return s.enter()
}

func (s *Store) exit() {
	s.mu.Lock()
	s.active--
	if s.active == 0 {
		s.idle.Broadcast()
	}
	s.mu.Unlock()
}

// wrap names the operation and marks Pebble's corruption errors.
func (s *Store) wrap(op string, err error) error {
	if errors.Is(err, store.ErrCorrupt) {
		return fmt.Errorf("%s: %w (data directory %s: restore it from a backup, or move it aside to start empty)", op, err, s.dir)
	}
	if pebble.IsCorruptionError(err) {
		return fmt.Errorf("%s: %w: %w (data directory %s: restore it from a backup, or move it aside to start empty)", op, store.ErrCorrupt, err, s.dir)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Close stops the compactor, waits for calls in flight, closes Pebble and
// releases the data directory. Further calls return store.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	s.closed = true
	s.compactor.cancel() // a running compaction gives up
	for s.active > 0 {
		s.idle.Wait()
	}
	s.mu.Unlock()
	s.compactor.stop()
	err := s.db.Close()
	if lerr := s.lock.Close(); err == nil && lerr != nil {
		err = fmt.Errorf("release lock: %w", lerr)
	}
	if err != nil {
		return s.wrap("close store "+s.dir, err)
	}
	return nil
}

// Stats are counters of the store's tombstone housekeeping.
type Stats struct {
	RangeDeletes uint64 // acked prefixes range-deleted by SetFloor
	Compactions  uint64 // drained-queue compactions finished
}

// Stats returns the housekeeping counters.
func (s *Store) Stats() Stats {
	return Stats{RangeDeletes: s.rangeDeletes.Load(), Compactions: s.compactions.Load()}
}

// Get returns a copy of one message record, or store.ErrNotFound.
func (s *Store) Get(q store.QueueID, seq uint64) ([]byte, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	rec, sequential, gen := s.ahead.take(q, seq)
	switch {
	case rec != nil:
		return rec, nil
	case sequential:
		return s.getAhead(q, seq, gen)
	}
	return s.get("get message", msgKey(kindRecord, q, seq))
}

// getAhead returns the record of (q, seq) and reads the records after it
// into the queue's read-ahead window (readahead.go).
func (s *Store) getAhead(q store.QueueID, seq uint64, gen uint64) ([]byte, error) {
	var (
		first []byte
		next  = make([][]byte, 0, readaheadRecords)
		size  int
		slab  []byte // the records are copied into shared buffers, not one allocation each
	)
	want := seq
	err := s.iterate("get message", msgKey(kindRecord, q, seq), msgQueueEnd(q), isIndexKey,
		func(k, v []byte) (bool, error) {
			got, _, err := decodeMsgKey(k)
			if err != nil {
				return false, err
			}
			if got != want {
				return false, nil // a gap: read ahead only a contiguous run
			}
			if cap(slab)-len(slab) < len(v) {
				slab = make([]byte, 0, max(len(v), readaheadSlab))
			}
			at := len(slab)
			slab = append(slab, v...)
			rec := slab[at:len(slab):len(slab)] // capped: an append to one record never reaches the next
			if first == nil {
				first = rec
			} else {
				next = append(next, rec)
				size += len(rec)
			}
			want++
			return len(next) < readaheadRecords && size < readaheadBytes, nil
		})
	if err != nil {
		return nil, err
	}
	if first == nil {
		return nil, store.ErrNotFound
	}
	s.ahead.install(q, seq+1, next, size, gen)
	return first, nil
}

// GetMeta returns a copy of a metadata value, or store.ErrNotFound.
func (s *Store) GetMeta(key string) ([]byte, error) {
	return s.get("get meta", metaKey(key))
}

func (s *Store) get(op string, key []byte) ([]byte, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, s.wrap(op, err)
	}
	out := append(make([]byte, 0, len(v)), v...)
	if err := closer.Close(); err != nil {
		return nil, s.wrap(op, err)
	}
	return out, nil
}

// Floor returns the queue's ack floor, or 0.
func (s *Store) Floor(q store.QueueID) (uint64, error) {
	v, err := s.get("get floor", floorKey(q))
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	f, err := decodeFloor(q, v)
	if err != nil {
		return 0, s.wrap("get floor", err)
	}
	return f.floor, nil
}

// LastSeq returns the highest seq present in the queue, or 0.
func (s *Store) LastSeq(q store.QueueID) (uint64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.exit()
	const op = "last seq"
	it, err := s.db.NewIterWithContext(context.Background(), &pebble.IterOptions{LowerBound: msgQueueStart(q), UpperBound: msgQueueEnd(q)})
	if err != nil {
		return 0, s.wrap(op, err)
	}
	var last uint64
	for valid := it.Last(); valid; valid = it.Prev() {
		seq, kind, derr := decodeMsgKey(it.Key())
		if derr != nil {
			err = derr
			break
		}
		if kind == kindRecord {
			last = seq
			break
		}
	}
	if err == nil {
		err = it.Error()
	}
	if cerr := it.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return 0, s.wrap(op, err)
	}
	return last, nil
}

// Scan calls fn for the queue's messages with seq >= from in seq order. It
// seeks straight to from: pass the queue's floor.
func (s *Store) Scan(q store.QueueID, from uint64, fn func(seq uint64, rec []byte) bool) error {
	return s.scanRecords("scan", q, from, fn)
}

// scanRecords calls fn for the queue's records with seq >= from in seq
// order, passing over the index entries between them.
func (s *Store) scanRecords(op string, q store.QueueID, from uint64, fn func(uint64, []byte) bool) error {
	return s.iterate(op, msgKey(kindRecord, q, from), msgQueueEnd(q), isIndexKey,
		func(k, v []byte) (bool, error) {
			seq, _, err := decodeMsgKey(k)
			if err != nil {
				return false, err
			}
			return fn(seq, v), nil
		})
}

// ScanIndex calls fn for the queue's index entries with seq >= from in seq
// order. It seeks straight to from: pass the queue's floor. The iterator
// skips record keys without reading their values, which value separation
// keeps out of the sstables (see the package doc).
func (s *Store) ScanIndex(q store.QueueID, from uint64, fn func(seq uint64, idx []byte) bool) error {
	return s.iterate("scan index", msgSeqStart(q, from), msgQueueEnd(q), isRecordKey,
		func(k, v []byte) (bool, error) {
			seq, _, err := decodeMsgKey(k)
			if err != nil {
				return false, err
			}
			return fn(seq, v), nil
		})
}

// ScanState calls fn for the queue's state entries in seq order, starting at
// the queue's floor (states below it were acked).
func (s *Store) ScanState(q store.QueueID, fn func(seq uint64, state []byte) bool) error {
	floor, err := s.Floor(q)
	if err != nil {
		return err
	}
	return s.scanQueue("scan state", prefixState, q, floor, fn)
}

func (s *Store) scanQueue(op string, prefix byte, q store.QueueID, from uint64, fn func(uint64, []byte) bool) error {
	return s.iterate(op, queueKey(prefix, q, from), queueEnd(prefix, q), nil,
		func(k, v []byte) (bool, error) {
			seq, err := decodeSeq(k)
			if err != nil {
				return false, err
			}
			return fn(seq, v), nil
		})
}

// ScanDelays calls fn for delay entries with due >= from in due order.
func (s *Store) ScanDelays(from int64, fn func(due int64, q store.QueueID, seq uint64) bool) error {
	return s.iterate("scan delays", delayKey(from, 0, 0), keyspaceEnd(prefixDelay), nil,
		func(k, _ []byte) (bool, error) {
			due, q, seq, err := decodeDelayKey(k)
			if err != nil {
				return false, err
			}
			return fn(due, q, seq), nil
		})
}

// ScanMeta calls fn for every metadata key with the prefix, in key order.
func (s *Store) ScanMeta(prefix string, fn func(key string, value []byte) bool) error {
	lo := metaKey(prefix)
	return s.iterate("scan meta", lo, prefixUpperBound(lo), nil,
		func(k, v []byte) (bool, error) {
			return fn(string(k[1:]), v), nil
		})
}

// iterate calls fn for the keys in [lo, hi) in order, except those skip
// (if not nil) returns true for, until fn returns false or an error. A
// skipped key's value is not read.
func (s *Store) iterate(op string, lo, hi []byte, skip func(k []byte) bool, fn func(k, v []byte) (bool, error)) (err error) {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()
	it, err := s.db.NewIterWithContext(context.Background(), &pebble.IterOptions{LowerBound: lo, UpperBound: hi, SkipPoint: skip})
	if err != nil {
		return s.wrap(op, err)
	}
	defer func() {
		if cerr := it.Close(); err == nil && cerr != nil {
			err = s.wrap(op, cerr)
		}
	}()
	for valid := it.First(); valid; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return s.wrap(op, err)
		}
		more, err := fn(it.Key(), v)
		if err != nil {
			return s.wrap(op, err)
		}
		if !more {
			return nil
		}
	}
	if err := it.Error(); err != nil {
		return s.wrap(op, err)
	}
	return nil
}
