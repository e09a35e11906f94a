package pebblestore

// The WAL check. Pebble replays its newest write-ahead log up to the first
// record it cannot read and treats the rest as the log's end, saying only
// "replayed N keys": a record cut by a crash and a record damaged in the
// middle of the file followed by thousands of good ones (confirmed
// messages) look the same. Open reads the newest WAL first and tells them
// apart:
//
//   - no damage: nothing to say;
//   - damage with no record of this log after it (a torn final write, a
//     zeroed or recycled tail): normal after kill -9; the tail is cut and a
//     warning says how many bytes were dropped;
//   - damage followed by intact chunks of this log: refused, naming the
//     file and the offset, unless Options.RepairWAL accepts the loss; then
//     the file is cut at the damage and an error line says how many records
//     and bytes were dropped.
//
// The WAL format (Pebble's record package): 32 KiB blocks of chunks, each
// chunk a header (checksum uint32, length uint16, type byte; the
// recyclable and sync-offset types add the log number, uint32, and the
// sync offset, uint64) and its payload; the checksum is a masked CRC-32C of
// the type byte through the payload.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"slices"

	"github.com/cockroachdb/pebble/v2/record"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/wal"

	"github.com/sluicemq/sluice/internal/store"
)

// walDamage is what checkWAL found wrong in one WAL file.
type walDamage struct {
	path   string
	offset int64 // where the first unreadable record starts
	size   int64 // the file's length
	good   int   // records before the damage
	// after counts the records of this log that start intact after the
	// damage.
	after int
	// intact is set when any chunk of this log follows the damage intact
	// (a record's later chunks count): the bytes after the damage were
	// written, so the damage is not a write the crash cut short.
	intact bool
}

func (d walDamage) droppedBytes() int64 { return d.size - d.offset }

// droppedRecords counts the damaged record and the intact ones after it.
func (d walDamage) droppedRecords() int { return 1 + d.after }

// checkWALs checks the newest WAL in dir (Pebble's directory, which may not
// exist yet) and cuts or refuses it as the file comment says.
func checkWALs(fs vfs.FS, dir string, repair bool, log *slog.Logger) error {
	names, err := fs.List(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	var newest wal.NumWAL
	found := false
	for _, name := range names {
		if num, idx, ok := wal.ParseLogFilename(name); ok && idx == 0 && (!found || num > newest) {
			newest, found = num, true
		}
	}
	if !found {
		return nil
	}
	path := fs.PathJoin(dir, fmt.Sprintf("%06d.log", uint64(newest)))
	data, err := readWAL(fs, path)
	if err != nil {
		return err
	}
	d, damaged := checkWAL(data, uint32(newest))
	if !damaged {
		return nil
	}
	d.path = path
	attrs := []any{"file", d.path, "offset", d.offset, "dropped_bytes", d.droppedBytes(),
		"dropped_records", d.droppedRecords(), "kept_records", d.good}
	switch {
	case !d.intact:
		log.Warn("write-ahead log ends in a torn record (normal after a crash): cutting it", attrs...)
	case !repair:
		return fmt.Errorf("%w: write-ahead log %s is damaged at offset %d and %d intact records of it follow the damage: "+
			"refusing to start, since starting would drop them (%d records, %d bytes from the offset on); "+
			"restore the data directory from a backup, or start with --repair to accept the loss",
			store.ErrCorrupt, d.path, d.offset, d.after, d.droppedRecords(), d.droppedBytes())
	default:
		log.Error("write-ahead log damaged: --repair drops everything from the damage on", attrs...)
	}
	if err := writeFileAtomic(fs, dir, fs.PathBase(path), data[:d.offset]); err != nil {
		return fmt.Errorf("cut %s at offset %d: %w", path, d.offset, err)
	}
	return nil
}

// readWAL returns the content of one WAL file.
func readWAL(fs vfs.FS, path string) ([]byte, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, nil
}

// checkWAL reads the content of WAL logNum; damaged is false when every
// record reads and the file ends cleanly.
func checkWAL(data []byte, logNum uint32) (d walDamage, damaged bool) {
	d = walDamage{size: int64(len(data))}
	// Records of the recyclable formats carry their log's number; pass it
	// so a recycled file's stale records read as its end.
	r := newRecordReader(record.NewReader, bytes.NewReader(data), logNum)
	for {
		off := r.Offset()
		rec, err := r.Next()
		if err == nil {
			_, err = io.Copy(io.Discard, rec)
		}
		if err == io.EOF {
			return d, false
		}
		if err != nil {
			d.offset = off
			break
		}
		d.good++
	}
	tail := data[d.offset:]
	if !slices.ContainsFunc(tail, func(b byte) bool { return b != 0 }) {
		return d, false // a zeroed tail holds nothing
	}
	if c, ok := chunkAt(data, int(d.offset)); ok && c.logNum != logNum {
		return d, false // the stale records of a recycled file
	}
	// The record that failed may have intact chunks of its own before
	// the bad one: look for this log's chunks after the first bad chunk.
	d.after, d.intact = recordsAfter(data, firstBadChunk(data, int(d.offset), logNum)+1, logNum)
	return d, true
}

// newRecordReader calls record.NewReader, whose log number type lives in
// a Pebble internal package: inference names it.
func newRecordReader[N ~uint64](newReader func(io.Reader, N) *record.Reader, r io.Reader, logNum uint32) *record.Reader {
	return newReader(r, N(logNum))
}

// chunk is one chunk header read from a WAL.
type chunk struct {
	kind   byte
	logNum uint32
	hdr    int // header size
	end    int // offset of the byte after the chunk's payload
}

const (
	walBlockSize = 32 << 10
	// Chunk types that carry a log number: recyclable full, first, middle,
	// last (5-8) and the same with a sync offset (9-12).
	firstLogNumKind, lastLogNumKind = 5, 12
	syncOffsetKind                  = 9
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// chunkAt reads a chunk with a log number at off, if one is there whose
// checksum holds.
func chunkAt(data []byte, off int) (chunk, bool) {
	hdr := 11
	if off+hdr > len(data) {
		return chunk{}, false
	}
	kind := data[off+6]
	if kind < firstLogNumKind || kind > lastLogNumKind {
		return chunk{}, false
	}
	if kind >= syncOffsetKind {
		hdr += 8
	}
	n := int(binary.LittleEndian.Uint16(data[off+4:]))
	end := off + hdr + n
	if end > len(data) || off%walBlockSize+hdr+n > walBlockSize {
		return chunk{}, false
	}
	c := crc32.Checksum(data[off+6:end], castagnoli)
	if binary.LittleEndian.Uint32(data[off:]) != (c>>15|c<<17)+0xa282ead8 {
		return chunk{}, false
	}
	return chunk{kind: kind, logNum: binary.LittleEndian.Uint32(data[off+7:]), hdr: hdr, end: end}, true
}

// firstBadChunk walks the chunks of logNum from off and returns where the
// first one that does not read starts.
func firstBadChunk(data []byte, off int, logNum uint32) int {
	for {
		c, ok := chunkAt(data, off)
		if !ok || c.logNum != logNum {
			return off
		}
		off = c.end
		// A block with no room left for a header is padded.
		if rem := walBlockSize - off%walBlockSize; rem < c.hdr {
			off += rem
		}
	}
}

// recordsAfter counts the records of logNum that start (a full or a first
// chunk) at or after from, looking at every offset (damage may have shifted
// chunks off their usual places), and reports whether any chunk of logNum
// is there at all.
func recordsAfter(data []byte, from int, logNum uint32) (n int, any bool) {
	for off := from; off+11 <= len(data); {
		c, ok := chunkAt(data, off)
		if !ok || c.logNum != logNum {
			off++
			continue
		}
		if k := (c.kind - firstLogNumKind) % 4; k == 0 || k == 1 { // full or first
			n++
		}
		any = true
		off = c.end
	}
	return n, any
}
