package pebblestore

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicemq/sluice/internal/store"
)

// crashImage writes batches synced batches into a store and copies its
// directory while the store is still open, as kill -9 would leave it. It
// returns the copy and the path of its newest WAL.
func crashImage(t *testing.T, batches int) (dir, walPath string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "live")
	s := open(t, src, testOptions(nil))
	for i := range batches {
		mustApply(t, s, batchOf(i), true)
	}
	dir = filepath.Join(t.TempDir(), "image")
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	logs, _ := filepath.Glob(filepath.Join(dir, pebbleDir, "*.log"))
	if len(logs) == 0 {
		t.Fatal("no WAL in the image")
	}
	return dir, logs[len(logs)-1]
}

func logTo(o Options, buf *bytes.Buffer) Options {
	o.Logger = slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return o
}

func damage(t *testing.T, path string, f func([]byte) []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, f(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// DESIGN §5: "A torn or corrupt tail after a crash is detected (checksums)
// and cut off with a log line; the broker starts with everything before it."
func TestWALTornTailIsCutWithAWarning(t *testing.T) {
	const batches = 50
	dir, wal := crashImage(t, batches)
	damage(t, wal, func(b []byte) []byte { return b[:len(b)-7] })
	var logged bytes.Buffer
	s := open(t, dir, logTo(testOptions(nil), &logged))
	line := logged.String()
	if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "torn") ||
		!strings.Contains(line, "dropped_bytes=") || !strings.Contains(line, filepath.Base(wal)) {
		t.Fatalf("no warning naming the file and the bytes cut; log:\n%s", line)
	}
	for i := range batches - 1 {
		if got := batchPresence(t, s, i); got != "all" {
			t.Fatalf("batch %d before the torn record: %s, want all", i, got)
		}
	}
	if got := batchPresence(t, s, batches-1); got != "none" {
		t.Fatalf("the torn batch: %s, want none", got)
	}
}

func TestWALCorruptionInTheMiddleRefusesToStart(t *testing.T) {
	const batches = 200
	dir, wal := crashImage(t, batches)
	var at int
	damage(t, wal, func(b []byte) []byte {
		at = len(b) / 2
		for i := at; i < at+16; i++ {
			b[i] ^= 0xff
		}
		return b
	})
	_, err := Open(dir, testOptions(nil))
	if !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Open of a WAL damaged mid-file = %v, want ErrCorrupt", err)
	}
	if msg := err.Error(); !strings.Contains(msg, filepath.Base(wal)) || !strings.Contains(msg, "offset") ||
		!strings.Contains(msg, "--repair") {
		t.Fatalf("the refusal does not name the file, the offset and --repair: %v", err)
	}

	// --repair accepts the loss, says what it dropped, and keeps what came
	// before the damage.
	var logged bytes.Buffer
	o := logTo(testOptions(nil), &logged)
	o.RepairWAL = true
	s := open(t, dir, o)
	line := logged.String()
	if !strings.Contains(line, "dropped_records=") || !strings.Contains(line, "dropped_bytes=") {
		t.Fatalf("repair did not report what it dropped; log:\n%s", line)
	}
	kept := 0
	for i := range batches {
		if batchPresence(t, s, i) != "all" {
			break
		}
		kept++
	}
	if kept == 0 || kept == batches {
		t.Fatalf("%d of %d batches kept after repair, want those before the damage at %d", kept, batches, at)
	}
	s.Close()
	// Repaired: the next start is clean.
	logged.Reset()
	s = open(t, dir, logTo(testOptions(nil), &logged))
	if strings.Contains(logged.String(), "dropped_bytes") {
		t.Fatalf("a second start after repair reports damage again:\n%s", logged.String())
	}
	t.Logf("kept %d of %d batches; %s", kept, batches, fmt.Sprint(strings.Count(line, "\n"), " log lines"))
}

func TestWALCleanRestartSaysNothing(t *testing.T) {
	dir, _ := crashImage(t, 20)
	var logged bytes.Buffer
	s := open(t, dir, logTo(testOptions(nil), &logged))
	if strings.Contains(logged.String(), "dropped_bytes") {
		t.Fatalf("an undamaged WAL reported damage:\n%s", logged.String())
	}
	if got := batchPresence(t, s, 19); got != "all" {
		t.Fatalf("last batch: %s", got)
	}
}

// A record larger than a WAL block spans chunks: damage in its middle
// chunk, with its last chunk intact after it, is corruption; a cut inside
// its last chunk is a torn tail.
func TestWALDamageInsideAMultiBlockRecord(t *testing.T) {
	image := func(t *testing.T) (string, string) {
		src := filepath.Join(t.TempDir(), "live")
		s := open(t, src, testOptions(nil))
		mustApply(t, s, batchOf(0), true)
		var b store.Batch
		b.PutMessage(3, 1, bytes.Repeat([]byte("x"), 100<<10)) // about four blocks
		mustApply(t, s, &b, true)
		dir := filepath.Join(t.TempDir(), "image")
		if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
			t.Fatal(err)
		}
		logs, _ := filepath.Glob(filepath.Join(dir, pebbleDir, "*.log"))
		return dir, logs[len(logs)-1]
	}
	t.Run("middle chunk", func(t *testing.T) {
		dir, wal := image(t)
		damage(t, wal, func(b []byte) []byte {
			for i := 40 << 10; i < 40<<10+16; i++ {
				b[i] ^= 0xff
			}
			return b
		})
		if _, err := Open(dir, testOptions(nil)); !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("Open = %v, want ErrCorrupt", err)
		}
	})
	t.Run("cut in the last chunk", func(t *testing.T) {
		dir, wal := image(t)
		damage(t, wal, func(b []byte) []byte { return b[:len(b)-100] })
		var logged bytes.Buffer
		s := open(t, dir, logTo(testOptions(nil), &logged))
		if !strings.Contains(logged.String(), "torn") {
			t.Fatalf("no torn-tail warning:\n%s", logged.String())
		}
		if got := batchPresence(t, s, 0); got != "all" {
			t.Fatalf("the batch before the torn record: %s", got)
		}
	})
}
