package broker

// Task records: the dead-letter workflow (package dlq) keeps its durable
// redrive tasks in the broker's store, so a task survives a restart. The
// broker does not read them: they are opaque values under records.MetaTask,
// written synced on their own or inside a move's batch (MoveOptions.Records).

import (
	"fmt"
	"strings"

	"github.com/sluicemq/sluice/internal/records"
	"github.com/sluicemq/sluice/internal/store"
)

// TaskRecord is one record of the workflow's tasks.
type TaskRecord struct {
	Key   string
	Value []byte
}

// taskBatch is a batch that stores recs (nil for none).
func taskBatch(recs []TaskRecord) *store.Batch {
	if len(recs) == 0 {
		return nil
	}
	b := &store.Batch{}
	for _, r := range recs {
		b.PutMeta(records.MetaTask+r.Key, records.EncodeOpaque(r.Value))
	}
	return b
}

// PutTaskRecords stores recs durably (synced) and atomically.
func (b *Broker) PutTaskRecords(recs ...TaskRecord) error {
	batch := taskBatch(recs)
	if batch == nil {
		return nil
	}
	if err := b.env.st.Apply(batch, true); err != nil {
		return internalError("store task", err)
	}
	return nil
}

// DeleteTaskRecords deletes the records whose keys start with prefix.
func (b *Broker) DeleteTaskRecords(prefix string) error {
	var batch store.Batch
	err := b.env.st.ScanMeta(records.MetaTask+prefix, func(key string, _ []byte) bool {
		batch.DeleteMeta(key)
		return true
	})
	if err == nil && batch.Len() > 0 {
		err = b.env.st.Apply(&batch, true)
	}
	if err != nil {
		return internalError("delete task", err)
	}
	return nil
}

// TaskRecords calls fn for every stored task record, in key order.
func (b *Broker) TaskRecords(fn func(TaskRecord) bool) error {
	var derr error
	err := b.env.st.ScanMeta(records.MetaTask, func(key string, v []byte) bool {
		val, err := records.DecodeOpaque(fmt.Sprintf("task record %q", key), v)
		if err != nil {
			derr = err
			return false
		}
		return fn(TaskRecord{Key: strings.TrimPrefix(key, records.MetaTask), Value: val})
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		return internalError("read tasks", err)
	}
	return nil
}
