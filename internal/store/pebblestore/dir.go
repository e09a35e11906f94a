package pebblestore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/sluicemq/sluice/internal/store"
)

// FormatVersion is the data directory format this build writes and reads.
// Format 4 keeps each seq's index entry right before its record (seq-major
// message keys, values separated into blob files). A format 3 directory
// (block-major message keys) is upgraded in place by Open (upgrade.go);
// format 1 (no index) and 2 (index in a keyspace of its own) directories
// are refused with ErrFormat.
const FormatVersion = 4

// upgradableVersion is the older format Open upgrades in place.
const upgradableVersion = 3

const (
	lockFile   = "LOCK"
	formatFile = "FORMAT"
	pebbleDir  = "pebble"
	formatTag  = "sluice-store-format"
)

// ErrLocked is returned by Open when another process (or another Store in
// this process) has the data directory open.
var ErrLocked = errors.New("pebblestore: data directory in use")

// ErrFormat is returned by Open for a data directory of a format this build
// does not read.
var ErrFormat = errors.New("pebblestore: unsupported data directory format")

// lockDir takes the data directory's lock file. On the operating system's
// file system it is an flock(2) on <dir>/LOCK, released by the kernel if the
// process dies; on any other vfs.FS it is that FS's Lock.
func lockDir(fs vfs.FS, dir string) (io.Closer, error) {
	path := fs.PathJoin(dir, lockFile)
	if fs != vfs.Default {
		c, err := fs.Lock(path)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: lock %s: %w", ErrLocked, dir, path, err)
		}
		return c, nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is open in another broker (lock %s is held); stop it or use another data directory", ErrLocked, dir, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil // closing the file releases the flock
}

// checkFormat reads <dir>/FORMAT, or writes it for a new directory, and
// returns the directory's format: FormatVersion or upgradableVersion.
func checkFormat(fs vfs.FS, dir string) (int, error) {
	version, err := readFormat(fs, dir)
	if err != nil || version == FormatVersion || version == upgradableVersion {
		return version, err
	}
	if version < FormatVersion {
		return 0, fmt.Errorf("%w: %s is format %d of an older Sluice, this build reads format %d and upgrades only format %d; "+
			"drain its queues with the older release, or move the directory aside to start empty",
			ErrFormat, dir, version, FormatVersion, upgradableVersion)
	}
	return 0, fmt.Errorf("%w: %s is format %d, this build reads format %d; run a Sluice release that reads format %d",
		ErrFormat, dir, version, FormatVersion, version)
}

// writeFormat records that dir is of format version.
func writeFormat(fs vfs.FS, dir string, version int) error {
	return writeFileAtomic(fs, dir, formatFile, fmt.Appendf(nil, "%s %d\n", formatTag, version))
}

// readFormat returns the format in <dir>/FORMAT, writing FormatVersion there
// for a new directory.
func readFormat(fs vfs.FS, dir string) (int, error) {
	path := fs.PathJoin(dir, formatFile)
	f, err := fs.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		if _, err := fs.Stat(fs.PathJoin(dir, pebbleDir)); err == nil {
			return 0, fmt.Errorf("%w: %s is missing but %s holds data; restore %s from a backup or move the directory aside",
				store.ErrCorrupt, path, fs.PathJoin(dir, pebbleDir), formatFile)
		}
		return FormatVersion, writeFormat(fs, dir, FormatVersion)
	}
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	data, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	tag, num, ok := strings.Cut(strings.TrimSuffix(string(data), "\n"), " ")
	version, convErr := strconv.Atoi(num)
	if !ok || tag != formatTag || convErr != nil || version < 1 {
		return 0, fmt.Errorf("%w: %s: not a Sluice format file (%q); restore it from a backup or move the directory aside",
			store.ErrCorrupt, path, truncate(data, 64))
	}
	return version, nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// writeFileAtomic replaces dir/name with data: write a temp file, fsync it,
// rename it over name, fsync the directory.
func writeFileAtomic(fs vfs.FS, dir, name string, data []byte) error {
	tmp := fs.PathJoin(dir, name+".tmp")
	path := fs.PathJoin(dir, name)
	f, err := fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := fs.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return syncDir(fs, dir)
}

// makeDir creates dir if needed and fsyncs its parent, so the directory
// entry survives a crash.
func makeDir(fs vfs.FS, dir string) error {
	if _, err := fs.Stat(dir); err == nil {
		return nil
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return syncDir(fs, fs.PathDir(dir))
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
