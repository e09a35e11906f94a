package pebblestore

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/sluicemq/sluice/internal/store"
	"github.com/sluicemq/sluice/internal/store/storetest"
)

// testOptions are small enough that tests cross range-delete and
// compaction thresholds quickly.
func testOptions(fs vfs.FS) Options {
	o := DefaultOptions()
	o.FS = fs
	o.MemTableSize = 4 << 20
	o.CacheSize = 8 << 20
	return o
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(t.TempDir(), testOptions(nil))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestConformanceMemFS(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		o := testOptions(vfs.NewMem())
		o.RangeDeleteEvery, o.CompactEvery = 16, 16
		s, err := Open("/data", o)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
