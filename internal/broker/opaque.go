package broker

// Opaque records: the layers above keep durable state in the broker's
// store without the broker reading it. The dead-letter workflow (package
// dlq) keeps its redrive tasks (records.MetaTask), written synced on their
// own or inside a move's batch (MoveOptions.Records), so a task survives a
// restart with its progress exact; the audit log (access.AuditLog) keeps
// its entries (records.MetaAudit). Each value is records.EncodeOpaque's:
// a version byte in front of the owner's bytes.

import (
	"fmt"
	"strings"

	"github.com/sluicemq/sluice/internal/access"
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
	return b.applyOpaque("store task", taskBatch(recs))
}

// applyOpaque applies batch synced (nothing when nil); what names the
// write in the error.
func (b *Broker) applyOpaque(what string, batch *store.Batch) error {
	if batch == nil {
		return nil
	}
	if err := b.env.st.Apply(batch, true); err != nil {
		return internalError(what, err)
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
	return b.scanOpaque("task record", records.MetaTask, "", func(key string, v []byte) bool {
		return fn(TaskRecord{Key: key, Value: v})
	})
}

// scanOpaque calls fn with the key (without prefix) and the owner's bytes
// of every record under prefix whose key sorts after after; what names a
// record in the error.
func (b *Broker) scanOpaque(what, prefix, after string, fn func(key string, v []byte) bool) error {
	var derr error
	err := b.env.st.ScanMeta(prefix, func(key string, v []byte) bool {
		k := strings.TrimPrefix(key, prefix)
		if after != "" && k <= after {
			return true
		}
		val, err := records.DecodeOpaque(fmt.Sprintf("%s %q", what, key), v)
		if err != nil {
			derr = err
			return false
		}
		return fn(k, val)
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		return internalError("read "+what, err)
	}
	return nil
}

var _ access.AuditStore = (*Broker)(nil)

// PutAuditRecord stores an audit log record durably (access.AuditStore).
func (b *Broker) PutAuditRecord(key string, value []byte) error {
	var batch store.Batch
	batch.PutMeta(records.MetaAudit+key, records.EncodeOpaque(value))
	return b.applyOpaque("store audit entry", &batch)
}

// AuditRecords calls fn for the audit log's records after after, in key
// order (access.AuditStore).
func (b *Broker) AuditRecords(after string, fn func(key string, value []byte) bool) error {
	return b.scanOpaque("audit entry", records.MetaAudit, after, fn)
}
