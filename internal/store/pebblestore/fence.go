package pebblestore

// Fencing. Pebble cannot continue after its write-ahead log fails: a failed
// WAL write or sync wedges its commit pipeline, and the next WAL rotation
// (a full memtable) panics in the committing goroutine on the sticky error,
// or on the failed create of the next log when the data directory was
// deleted under the running process; it unwinds through Pebble's own
// deferred unlocks, so recover() cannot save the process.
//
// fenceFS therefore stands between Pebble and the file system and keeps
// every WAL failure from reaching Pebble: the first failed write, sync or
// create of a WAL file (or of a directory) fences the store, and from then
// on the WAL files swallow writes and syncs and report success. Pebble goes
// on as if its log were healthy, and the store refuses every write from the
// fence on, so no batch applied after the failure is ever reported
// durable: a batch waits for its sync, and the fence is set before the
// failed sync returns, so the store sees it when the wait ends.
//
// A WAL file that was unlinked (the data directory deleted under the
// broker) is detected at each sync by its link count, before the sync is
// reported successful: writes into a deleted file are not durable.
//
// Reads go on after the fence (Get, Scan: what the broker needs to deliver
// what its queues hold); writes fail with store.ErrFenced.

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/sluicemq/sluice/internal/store"
)

// fenceFS wraps the store's file system; see the file comment.
type fenceFS struct {
	vfs.FS
	s *Store
}

func isWAL(name string) bool { return strings.HasSuffix(name, ".log") }

func (fs *fenceFS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, cat)
	return fs.wrapWAL(name, "create", f, err)
}

func (fs *fenceFS) ReuseForWrite(oldname, newname string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, cat)
	return fs.wrapWAL(newname, "recycle", f, err)
}

// OpenDir wraps Pebble's directory, which holds the WAL: a failed sync of
// it after a new WAL's create is a WAL failure.
func (fs *fenceFS) OpenDir(name string) (vfs.File, error) {
	f, err := fs.FS.OpenDir(name)
	if err != nil || name != fs.PathJoin(fs.s.dir, pebbleDir) {
		return f, err
	}
	return &fencedFile{File: f, s: fs.s, name: name}, nil
}

// wrapWAL wraps a WAL file, or, when it could not be made, fences the store
// and hands Pebble a file that takes everything and keeps nothing.
func (fs *fenceFS) wrapWAL(name, op string, f vfs.File, err error) (vfs.File, error) {
	if !isWAL(name) {
		return f, err
	}
	if err != nil {
		fs.s.fence(fmt.Errorf("%s write-ahead log %s: %w", op, name, err))
		return discardFile{}, nil
	}
	return &fencedFile{File: f, s: fs.s, name: name, wal: true}, nil
}

// fencedFile is a WAL file or a directory: its write and sync failures
// fence the store instead of reaching Pebble.
type fencedFile struct {
	vfs.File
	s    *Store
	name string
	wal  bool
}

// failed fences the store on err and tells Pebble all is well.
func (f *fencedFile) failed(op string, err error) error {
	if err != nil {
		f.s.fence(fmt.Errorf("%s %s: %w", op, f.name, err))
	}
	return nil
}

func (f *fencedFile) fenced() bool { return f.wal && f.s.fatal.Load() != nil }

func (f *fencedFile) Write(p []byte) (int, error) {
	if f.fenced() {
		return len(p), nil
	}
	n, err := f.File.Write(p)
	if err != nil {
		return len(p), f.failed("write", err)
	}
	return n, nil
}

func (f *fencedFile) WriteAt(p []byte, off int64) (int, error) {
	if f.fenced() {
		return len(p), nil
	}
	n, err := f.File.WriteAt(p, off)
	if err != nil {
		return len(p), f.failed("write", err)
	}
	return n, nil
}

func (f *fencedFile) Preallocate(off, n int64) error {
	if f.fenced() {
		return nil
	}
	return f.failed("preallocate", f.File.Preallocate(off, n))
}

func (f *fencedFile) Sync() error {
	if f.fenced() {
		return nil
	}
	return f.failed("sync", f.synced(f.File.Sync()))
}

func (f *fencedFile) SyncData() error {
	if f.fenced() {
		return nil
	}
	return f.failed("sync", f.synced(f.File.SyncData()))
}

func (f *fencedFile) SyncTo(length int64) (bool, error) {
	if f.fenced() {
		return true, nil
	}
	full, err := f.File.SyncTo(length)
	if err = f.synced(err); err != nil {
		return true, f.failed("sync", err)
	}
	return full, nil
}

// errUnlinked is the cause of a fence on a WAL file that was deleted.
var errUnlinked = errors.New("the file was deleted (was the data directory removed?)")

// synced checks, after a successful sync of a WAL file, that the file is
// still linked into the directory tree.
func (f *fencedFile) synced(err error) error {
	if err != nil || !f.wal {
		return err
	}
	fi, serr := f.File.Stat()
	if serr != nil {
		return nil
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink == 0 {
		return errUnlinked
	}
	return nil
}

func (f *fencedFile) Close() error {
	err := f.File.Close()
	if f.wal && err != nil {
		// Pebble closes a WAL after syncing it: a failure here means the
		// tail may not be durable.
		return f.failed("close", err)
	}
	return err
}

// discardFile is the WAL Pebble gets when its file could not be created.
type discardFile struct{ vfs.File }

func (discardFile) Write(p []byte) (int, error)            { return len(p), nil }
func (discardFile) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }
func (discardFile) Preallocate(int64, int64) error         { return nil }
func (discardFile) Sync() error                            { return nil }
func (discardFile) SyncData() error                        { return nil }
func (discardFile) SyncTo(int64) (bool, error)             { return true, nil }
func (discardFile) Close() error                           { return nil }
func (discardFile) Fd() uintptr                            { return vfs.InvalidFd }
func (discardFile) Stat() (vfs.FileInfo, error)            { return nil, os.ErrInvalid }
func (discardFile) Read([]byte) (int, error)               { return 0, os.ErrInvalid }
func (discardFile) ReadAt([]byte, int64) (int, error)      { return 0, os.ErrInvalid }
func (discardFile) Prefetch(int64, int64) error            { return nil }

// fence fences the store after err, once: writes fail from now on and
// Options.OnFence hears of it.
func (s *Store) fence(err error) {
	var fe *fatalError
	if !errors.As(err, &fe) {
		fe = &fatalError{msg: err.Error(), cause: err}
	}
	s.fail(fe)
}

// Fenced returns the error that fenced the store, or nil.
func (s *Store) Fenced() error {
	if f := s.fatal.Load(); f != nil {
		return fmt.Errorf("%w: %w", store.ErrFenced, f)
	}
	return nil
}

// isDiskError reports whether a background error says the disk cannot take
// the store's writes: full, failing, read-only, or the directory gone.
func isDiskError(err error) bool {
	for _, e := range []error{syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EROFS, syscall.ENOENT} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
