package dlq

// RedriveNow moves the messages ids at once, as one chunk of a task does,
// without a task (for tests and benchmarks).
func (w *Workflow) RedriveNow(u User, vhost, queue string, ids []uint64, t Target, dryRun bool) ([]Result, error) {
	return w.moveChunk(u, vhost, queue, ids, t, dryRun, nil)
}

// MatchingIDs returns the ids a redrive of the queue's messages that pass
// f would take.
func (w *Workflow) MatchingIDs(vhost, queue string, f Filter) ([]uint64, error) {
	return w.matchingIDs(vhost, queue, f)
}

// SetPlanned sets a function run between planning a redrive chunk and
// moving it.
func (w *Workflow) SetPlanned(f func()) { w.planned = f }

// StatusOf is the HTTP status a message's redrive failure is reported with.
var StatusOf = statusOf
