package access

// Failed logins, logged in aggregate: a source's first failure is logged
// at once (door, source, user, why); the failures that follow within the
// window are counted and logged as one line when the window ends (Flush),
// with how many there were, how many the throttle refused and which user
// names were tried. A guessing run of thousands of attempts is then two
// lines a minute per source, and still says where it comes from.

import (
	"log/slog"
	"slices"
	"sync"
	"time"
)

// maxUsersLogged bounds the user names one aggregate line lists.
const maxUsersLogged = 5

// Failures logs and counts failed logins. Safe for concurrent use.
type Failures struct {
	log    *slog.Logger
	window time.Duration
	now    func() time.Time

	mu        sync.Mutex // guards the fields below
	runs      map[string]*failureRun
	failed    map[string]uint64 // by door
	throttled map[string]uint64 // by door
}

type failureRun struct {
	door, remote string
	start        time.Time
	failed       int
	throttled    int
	users        []string
}

// NewFailures returns an empty Failures that aggregates over window.
func NewFailures(log *slog.Logger, window time.Duration, now func() time.Time) *Failures {
	return &Failures{log: log, window: window, now: now, runs: make(map[string]*failureRun),
		failed: make(map[string]uint64), throttled: make(map[string]uint64)}
}

// Failed records a failed login through door ("amqp", "http") from
// remote (counted under src) as user; reason is what the log says (the
// client was told less).
func (f *Failures) Failed(door, remote string, src Source, user, reason string) {
	f.record(door, remote, src, user, reason, false)
}

// Throttled records an attempt the throttle refused unchecked.
func (f *Failures) Throttled(door, remote string, src Source, user string) {
	f.record(door, remote, src, user, "", true)
}

func (f *Failures) record(door, remote string, src Source, user, reason string, throttled bool) {
	f.mu.Lock()
	if throttled {
		f.throttled[door]++
	} else {
		f.failed[door]++
	}
	r := f.runs[src.Key]
	if r != nil {
		if throttled {
			r.throttled++
		} else {
			r.failed++
		}
		if !slices.Contains(r.users, user) && len(r.users) < maxUsersLogged {
			r.users = append(r.users, user)
		}
		f.mu.Unlock()
		return
	}
	f.runs[src.Key] = &failureRun{door: door, remote: remote, start: f.now()}
	f.mu.Unlock()
	f.log.Warn("login failed", "door", door, "remote", remote, "user", user, "reason", reason,
		"throttled", throttled, "next", "further failures from this source are logged together every "+f.window.String())
}

// Flush logs the runs whose window has ended; the broker's housekeeping
// calls it every second.
func (f *Failures) Flush() {
	now := f.now()
	var due []*failureRun
	f.mu.Lock()
	for k, r := range f.runs {
		if now.Sub(r.start) >= f.window {
			delete(f.runs, k)
			if r.failed+r.throttled > 0 {
				due = append(due, r)
			}
		}
	}
	f.mu.Unlock()
	for _, r := range due {
		f.log.Warn("login failures", "door", r.door, "remote", r.remote, "failed", r.failed,
			"throttled", r.throttled, "users", r.users, "since", r.start.UTC().Format(time.RFC3339))
	}
}

// FailureCounts are the failed and throttled logins since start, by door.
type FailureCounts struct {
	Failed, Throttled map[string]uint64
}

// Counts returns the counters.
func (f *Failures) Counts() FailureCounts {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := FailureCounts{Failed: make(map[string]uint64), Throttled: make(map[string]uint64)}
	for k, v := range f.failed {
		c.Failed[k] = v
	}
	for k, v := range f.throttled {
		c.Throttled[k] = v
	}
	return c
}
