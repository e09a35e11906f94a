package broker

// The edit log: how a move planned from a message's content read earlier
// (package dlq reads a dead letter, rewrites it, then calls Move) learns
// that an operator's edit (ReplaceMessage) replaced that content in the
// meantime. Without it the move would carry the old content out and the
// edit would be lost without a word. A reader notes the queue's edit clock
// before it reads a record (StoredMessage.Version); Move refuses a message
// whose last edit came after that (PreconditionFailed, the API's 409), and
// the message stays where it is, edited, for the caller to read again. An
// edit made from a read (package dlq's partial edit) is checked the same
// way, so a second edit of one read does not undo the first.
//
// Edits are rare and queued messages many, so the log is a side table of
// the edited messages only, not a field of every entry. It lives in
// memory: a version is used within one process, moments after its read.

// editLog is a queue's record of its edits, guarded by queue.mu.
type editLog struct {
	clock uint64            // edits completed in the queue
	at    map[uint64]uint64 // seq → the clock its last edit set; nil until the first
	prune int               // len(at) at which seqs the queue no longer holds are dropped
}

// edited notes that the edit of seq completed: its new record is stored
// and it is ready again. held reports whether the queue still holds a seq.
func (l *editLog) edited(seq uint64, held func(uint64) bool) {
	l.clock++
	if l.at == nil {
		l.at = make(map[uint64]uint64)
	}
	l.at[seq] = l.clock
	if len(l.at) < l.prune {
		return
	}
	// A message leaves its queue by many paths (ack, move, expiry,
	// purge); rather than tell the log on each, drop what is gone when the
	// table has doubled since the last look, so it stays within twice the
	// edited messages still queued.
	for s := range l.at {
		if s != seq && !held(s) { // seq is between its hold and the ready list
			delete(l.at, s)
		}
	}
	l.prune = max(64, 2*len(l.at))
}

// AnyVersion, given as a version, accepts a message however it was edited.
const AnyVersion = ^uint64(0)

// since reports whether seq was edited after a read that noted version.
func (l *editLog) since(seq, version uint64) bool {
	return l.at[seq] > version
}

// readyUneditedLocked is readyEntryLocked for a message whose content was
// read at version: one edited since is PreconditionFailed (the API's 409).
func (q *queue) readyUneditedLocked(id, version uint64) error {
	if _, err := q.readyEntryLocked(id); err != nil {
		return err
	}
	if q.edits.since(id, version) {
		return errorf(PreconditionFailed, "message %d of queue '%s' in vhost '%s' was edited after it was read; read it again",
			id, q.name, q.vh.name)
	}
	return nil
}
