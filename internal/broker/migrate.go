package broker

// The one-time migration at open: the metadata values an earlier Sluice
// wrote without a version byte (the queue id counters and a queue id's
// flags, the limits, the policies; package records draws both layouts)
// are rewritten in the current layout, in one synced batch, before
// anything reads them. A value in neither layout stops the open with an
// error naming its key and version, before anything changed: a store
// written by a newer Sluice is refused, not misread. A store already
// migrated is only read.

import (
	"fmt"
	"log/slog"

	"github.com/sluicemq/sluice/internal/records"
	"github.com/sluicemq/sluice/internal/store"
)

// versionedValue says how the values under a metadata prefix are checked
// and, when in the layout before, rewritten.
type versionedValue struct {
	prefix string
	exact  bool // the prefix is the whole key
	// rewrite returns v in the current layout, and whether v was in the
	// layout before.
	rewrite func(v []byte) ([]byte, bool, error)
}

func queueIDCounter(what string) func([]byte) ([]byte, bool, error) {
	return func(v []byte) ([]byte, bool, error) {
		id, old, err := records.DecodeQueueIDCounter(what, v)
		return records.EncodeQueueIDCounter(id), old, err
	}
}

var versionedValues = []versionedValue{
	{prefix: records.MetaNextQueueID, exact: true, rewrite: queueIDCounter("next queue id")},
	{prefix: records.MetaDelayQueueID, exact: true, rewrite: queueIDCounter("delay queue id")},
	{prefix: records.MetaQueueID, rewrite: func(v []byte) ([]byte, bool, error) {
		durable, old, err := records.DecodeQueueIDFlags(v)
		return records.EncodeQueueIDFlags(durable), old, err
	}},
	{prefix: records.MetaLimit, rewrite: func(v []byte) ([]byte, bool, error) {
		n, old, err := records.DecodeLimit(v)
		return records.EncodeLimit(n), old, err
	}},
	{prefix: records.MetaPolicy, rewrite: func(v []byte) ([]byte, bool, error) {
		doc, old, err := records.DecodePolicy(v)
		return records.EncodePolicy(doc), old, err
	}},
}

// migrateRecords checks every value of versionedValues and rewrites those
// in the layout before.
func migrateRecords(st store.Store, log *slog.Logger) error {
	var batch store.Batch
	for _, vv := range versionedValues {
		var derr error
		err := st.ScanMeta(vv.prefix, func(key string, v []byte) bool {
			if vv.exact && key != vv.prefix {
				return true
			}
			nv, old, err := vv.rewrite(v)
			if err != nil {
				derr = fmt.Errorf("metadata %q: %w", key, err)
				return false
			}
			if old {
				batch.PutMeta(key, nv)
			}
			return true
		})
		if err == nil {
			err = derr
		}
		if err != nil {
			return fmt.Errorf("open broker: check record versions: %w", err)
		}
	}
	if batch.Len() == 0 {
		return nil
	}
	if err := st.Apply(&batch, true); err != nil {
		return fmt.Errorf("open broker: rewrite records of the layout before: %w", err)
	}
	log.Info("rewrote metadata records of an earlier layout with their version byte", "records", batch.Len())
	return nil
}
