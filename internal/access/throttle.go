package access

// Throttling failed logins. Each source (an IPv4 address, or the /64 an
// IPv6 address is in, since one host usually holds a whole /64) may fail
// Free times; from then on each failure closes the source's door for a
// delay that doubles with every further failure, up to MaxDelay. While
// the door is closed an attempt from the source is refused without its
// password being looked at, so guessing from many parallel connections
// gains nothing. A source that has not failed for Forget starts afresh.
// A login that succeeds forgets nothing: else a guesser who owns one
// account could clear its count between guesses.

import (
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// ThrottleConfig configures a Throttle.
type ThrottleConfig struct {
	// Free is how many failures a source may make before it is slowed.
	Free int
	// Delay is the first delay; each further failure doubles it.
	Delay time.Duration
	// MaxDelay bounds the delay.
	MaxDelay time.Duration
	// Forget is how long after its last failure a source starts afresh.
	Forget time.Duration
	// MaxSources bounds the table; past it the source that failed least
	// recently is forgotten first.
	MaxSources int
	// Now is the clock (nil: time.Now; the broker gives its own).
	Now func() time.Time
}

// DefaultThrottleConfig returns the throttle `sluice serve` runs with:
// five free failures, then 1 s, 2 s, 4 s … up to a minute.
func DefaultThrottleConfig() ThrottleConfig {
	return ThrottleConfig{Free: 5, Delay: time.Second, MaxDelay: time.Minute, Forget: 15 * time.Minute,
		MaxSources: 100_000}
}

// Validate reports a configuration that cannot work.
func (c ThrottleConfig) Validate() error {
	switch {
	case c.Free < 0:
		return fmt.Errorf("throttle config: Free %d is negative", c.Free)
	case c.Delay < 0 || c.MaxDelay < c.Delay:
		return fmt.Errorf("throttle config: Delay %v and MaxDelay %v, want 0 <= Delay <= MaxDelay", c.Delay, c.MaxDelay)
	case c.MaxSources < 1:
		return fmt.Errorf("throttle config: MaxSources %d, want at least 1", c.MaxSources)
	}
	return nil
}

// Source is where a login comes from: the key the throttle counts it
// under and whether it is a loopback address.
type Source struct {
	Key      string
	Loopback bool
}

// SourceOf reads a remote address as net.Conn.RemoteAddr and
// http.Request.RemoteAddr give it ("host:port"; a bare host works too).
// An address that does not parse is its own key and not loopback.
func SourceOf(remote string) Source {
	ap, err := netip.ParseAddrPort(remote)
	addr := ap.Addr()
	if err != nil {
		if addr, err = netip.ParseAddr(remote); err != nil {
			return Source{Key: remote}
		}
	}
	addr = addr.Unmap()
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return Source{Key: p.String(), Loopback: addr.IsLoopback()}
	}
	return Source{Key: addr.String(), Loopback: addr.IsLoopback()}
}

// Throttled is an attempt refused unchecked because its source is
// serving a delay.
type Throttled struct{ Wait time.Duration }

func (e *Throttled) Error() string {
	return fmt.Sprintf("too many failed logins from this address; try again in %v", e.Wait.Round(time.Second)+time.Second)
}

// Throttle keeps the failed logins of each source. Safe for concurrent
// use.
type Throttle struct {
	cfg ThrottleConfig

	mu      sync.Mutex // guards sources
	sources map[string]*penalty
}

type penalty struct {
	fails int
	last  time.Time // the last failure
	until time.Time // attempts before this are refused
}

// NewThrottle returns an empty Throttle.
func NewThrottle(cfg ThrottleConfig) (*Throttle, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Throttle{cfg: cfg, sources: make(map[string]*penalty)}, nil
}

// Wait returns how long source must still wait before an attempt from it
// is checked; 0 lets it go ahead.
func (t *Throttle) Wait(source string) time.Duration {
	now := t.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.sources[source]
	if p == nil || !now.Before(p.until) {
		return 0
	}
	return p.until.Sub(now)
}

// Failed records a failed login from source and returns the delay the
// source now serves (0 while it is within its free failures).
func (t *Throttle) Failed(source string) time.Duration {
	now := t.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.sources[source]
	if p != nil && now.Sub(p.last) > t.cfg.Forget {
		p.fails = 0
	}
	if p == nil {
		t.makeRoomLocked(now)
		p = &penalty{}
		t.sources[source] = p
	}
	p.fails++
	p.last = now
	d := t.delay(p.fails)
	p.until = now.Add(d)
	return d
}

// delay is the penalty after n failures.
func (t *Throttle) delay(n int) time.Duration {
	over := n - t.cfg.Free
	if over <= 0 {
		return 0
	}
	d := t.cfg.Delay
	for i := 1; i < over && d < t.cfg.MaxDelay; i++ {
		d *= 2
	}
	return min(d, t.cfg.MaxDelay)
}

// makeRoomLocked keeps the table under MaxSources: first the forgotten
// sources go, then the one that failed least recently.
func (t *Throttle) makeRoomLocked(now time.Time) {
	if len(t.sources) < t.cfg.MaxSources {
		return
	}
	var oldest string
	for k, p := range t.sources {
		if now.Sub(p.last) > t.cfg.Forget && !now.Before(p.until) {
			delete(t.sources, k)
			continue
		}
		if oldest == "" || p.last.Before(t.sources[oldest].last) {
			oldest = k
		}
	}
	if len(t.sources) >= t.cfg.MaxSources {
		delete(t.sources, oldest)
	}
}
