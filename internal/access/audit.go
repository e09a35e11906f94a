package access

// The audit log: who did what to which messages or definitions, one entry
// per action, kept in order of time. An action that changes things writes
// its entry after it happened (an edit, a purge); a long one (a redrive
// task) writes it before its first change and completes it at the end, so
// a task that moved anything is in the log whatever happens afterwards.
//
// The log's entries are JSON in records the AuditStore keeps (the broker
// keeps them in its store, with a version byte in front; see package
// records). Their keys are their ids, which sort by time.

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// AuditEntry is one operator action.
type AuditEntry struct {
	ID     string    `json:"id"`
	Time   time.Time `json:"time"`
	User   string    `json:"user"`
	Action string    `json:"action"` // edit, delete, purge, redrive, get, policy.set, …
	VHost  string    `json:"vhost"`
	Queue  string    `json:"queue"`
	Detail string    `json:"detail,omitempty"`
	IDs    []uint64  `json:"ids,omitempty"`
	Count  int       `json:"count"`
}

// MaxAuditIDs bounds the message ids one entry lists.
const MaxAuditIDs = 1000

// NewAuditEntry is the entry of user's action on n messages (ids of them
// listed); ids beyond MaxAuditIDs are counted in the detail, not listed.
func NewAuditEntry(user, action, vhost, queue, detail string, ids []uint64, n int) AuditEntry {
	if len(ids) > MaxAuditIDs {
		detail = fmt.Sprintf("%s (first %d of %d ids listed)", detail, MaxAuditIDs, len(ids))
		ids = ids[:MaxAuditIDs]
	}
	return AuditEntry{User: user, Action: action, VHost: vhost, Queue: queue, Detail: detail, IDs: ids, Count: n}
}

// AuditStore keeps the log's records durably.
type AuditStore interface {
	// PutAuditRecord stores value under key, synced before it returns.
	PutAuditRecord(key string, value []byte) error
	// AuditRecords calls fn for the records whose keys sort after after,
	// in key order, until fn returns false.
	AuditRecords(after string, fn func(key string, value []byte) bool) error
}

// AuditLog is the audit log over its store. It is safe for concurrent use
// as far as its store is.
type AuditLog struct {
	st  AuditStore
	now func() time.Time
}

// NewAuditLog returns the log kept in st, with entries timed by now (nil:
// time.Now).
func NewAuditLog(st AuditStore, now func() time.Time) *AuditLog {
	if now == nil {
		now = time.Now
	}
	return &AuditLog{st: st, now: now}
}

// Record stores e durably and returns it with its ID and Time filled.
func (l *AuditLog) Record(e AuditEntry) (AuditEntry, error) {
	e.Time = l.now().UTC()
	var r [4]byte
	_, _ = rand.Read(r[:])
	e.ID = fmt.Sprintf("%020d-%08x", e.Time.UnixNano(), binary.BigEndian.Uint32(r[:]))
	return e, l.put(e)
}

// Update rewrites the stored entry e.ID (a long action's entry, recorded
// when it started, with its outcome); its Time stays when it began.
func (l *AuditLog) Update(e AuditEntry) error {
	if e.ID == "" {
		return errors.New("audit: update of an entry without an id")
	}
	return l.put(e)
}

func (l *AuditLog) put(e AuditEntry) error {
	v, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("audit: encode entry: %w", err)
	}
	return l.st.PutAuditRecord(e.ID, v)
}

// Entries returns the entries with ids after after, oldest first, at most
// limit (0: all).
func (l *AuditLog) Entries(after string, limit int) ([]AuditEntry, error) {
	var (
		out  []AuditEntry
		derr error
	)
	err := l.st.AuditRecords(after, func(key string, v []byte) bool {
		var e AuditEntry
		if err := json.Unmarshal(v, &e); err != nil {
			derr = fmt.Errorf("audit entry %q: %w", key, err)
			return false
		}
		out = append(out, e)
		return limit <= 0 || len(out) < limit
	})
	if err == nil {
		err = derr
	}
	return out, err
}
