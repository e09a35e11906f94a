package access

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// memAudit is an AuditStore in memory.
type memAudit struct {
	recs map[string][]byte
	fail error
}

func (m *memAudit) PutAuditRecord(key string, v []byte) error {
	if m.fail != nil {
		return m.fail
	}
	m.recs[key] = slices.Clone(v)
	return nil
}

func (m *memAudit) AuditRecords(after string, fn func(string, []byte) bool) error {
	keys := make([]string, 0, len(m.recs))
	for k := range m.recs {
		if k > after {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !fn(k, m.recs[k]) {
			break
		}
	}
	return nil
}

func TestAuditLogRecordsInOrder(t *testing.T) {
	st := &memAudit{recs: map[string][]byte{}}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	l := NewAuditLog(st, func() time.Time { now = now.Add(time.Second); return now })
	first, err := l.Record(AuditEntry{User: "ops", Action: "redrive", VHost: "/", Queue: "dlq", Detail: "running"})
	if err != nil {
		t.Fatal(err)
	}
	if first.ID == "" || !first.Time.Equal(time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC)) {
		t.Fatalf("recorded %+v", first)
	}
	for i := range 3 {
		if _, err := l.Record(NewAuditEntry("ops", "purge", "/", fmt.Sprint("q", i), "", nil, i)); err != nil {
			t.Fatal(err)
		}
	}
	first.Detail, first.IDs, first.Count = "done", []uint64{7, 9}, 2
	if err := l.Update(first); err != nil {
		t.Fatal(err)
	}
	es, err := l.Entries("", 0)
	if err != nil || len(es) != 4 {
		t.Fatalf("entries %+v %v", es, err)
	}
	if e := es[0]; e.ID != first.ID || e.Detail != "done" || e.Count != 2 || !e.Time.Equal(first.Time) {
		t.Fatalf("the updated entry %+v, want its first time and its outcome", e)
	}
	if got := []string{es[1].Queue, es[2].Queue, es[3].Queue}; fmt.Sprint(got) != "[q0 q1 q2]" {
		t.Fatalf("order %v", got)
	}
	page, err := l.Entries(es[1].ID, 1)
	if err != nil || len(page) != 1 || page[0].Queue != "q1" {
		t.Fatalf("after %s limit 1: %+v %v", es[1].ID, page, err)
	}
	if err := l.Update(AuditEntry{Action: "edit"}); err == nil {
		t.Fatal("an entry without an id was updated")
	}
	st.fail = errors.New("disk full")
	if _, err := l.Record(AuditEntry{Action: "edit"}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("record on a failing store: %v", err)
	}
}

func TestAuditEntryBoundsIDs(t *testing.T) {
	ids := make([]uint64, MaxAuditIDs+5)
	e := NewAuditEntry("ops", "redrive", "/", "dlq", "task 1", ids, len(ids))
	if len(e.IDs) != MaxAuditIDs || e.Count != len(ids) || e.Detail != "task 1 (first 1000 of 1005 ids listed)" {
		t.Fatalf("entry of %d ids: %d listed, count %d, detail %q", len(ids), len(e.IDs), e.Count, e.Detail)
	}
	if e := NewAuditEntry("ops", "edit", "/", "q", "replaced", []uint64{3}, 1); len(e.IDs) != 1 || e.Detail != "replaced" {
		t.Fatalf("entry of one id: %+v", e)
	}
}

func TestAuditEntriesCorrupt(t *testing.T) {
	st := &memAudit{recs: map[string][]byte{"1": []byte("{not json")}}
	if _, err := NewAuditLog(st, nil).Entries("", 0); err == nil || !strings.Contains(err.Error(), `audit entry "1"`) {
		t.Fatalf("a corrupt entry: %v", err)
	}
}
