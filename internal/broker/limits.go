package broker

// Limits: RabbitMQ's per-user limits (rabbitmqctl set_user_limits, PUT
// /api/user-limits/{user}/{name}) and per-vhost limits (set_vhost_limits,
// PUT /api/vhost-limits/{vhost}/{name}). Sluice enforces max-connections of
// both, max-channels of users and max-queues of vhosts; other names are
// refused. A negative value means no limit, 0 allows
// no connection at all, as in RabbitMQ. Limits are durable.

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/sluicemq/sluice/internal/records"
	"github.com/sluicemq/sluice/internal/store"
)

// The limits Sluice enforces: max-connections of users and vhosts,
// max-channels of users (all of a user's channels, across connections),
// max-queues of vhosts.
const (
	LimitMaxConnections = "max-connections"
	LimitMaxChannels    = "max-channels"
	LimitMaxQueues      = "max-queues"
)

// LimitScope says what a limit is set on.
type LimitScope byte

const (
	UserLimit  LimitScope = 'u'
	VHostLimit LimitScope = 'v'
)

// Limits are the limits of one user or vhost, by limit name.
type Limits struct {
	Name   string           // the user or the vhost
	Values map[string]int64 // "max-connections" -> 10
}

// limitsDB holds the limits and counts the open connections they bound.
type limitsDB struct {
	// mu guards the fields below.
	mu     sync.Mutex
	values map[LimitScope]map[string]map[string]int64
	open   map[LimitScope]map[string]int // open connections per user / vhost
	chans  map[string]int                // open channels per user
}

func newLimitsDB() *limitsDB {
	return &limitsDB{
		values: map[LimitScope]map[string]map[string]int64{UserLimit: {}, VHostLimit: {}},
		open:   map[LimitScope]map[string]int{UserLimit: {}, VHostLimit: {}},
		chans:  map[string]int{},
	}
}

// openLimits loads the durable limits.
func (b *Broker) openLimits() error {
	db := newLimitsDB()
	var derr error
	err := b.env.st.ScanMeta(records.MetaLimit, func(key string, v []byte) bool {
		scope, owner, name, err := parseLimitKey(key)
		if err != nil {
			derr = err
			return false
		}
		n, _, perr := records.DecodeLimit(v)
		if perr != nil {
			derr = fmt.Errorf("limit record %q: %w", key, perr)
			return false
		}
		db.setLocked(scope, owner, name, n)
		return true
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		return fmt.Errorf("open broker: load limits: %w", err)
	}
	b.limits, b.env.limits = db, db
	return nil
}

// parseLimitKey splits a limit record's key (limitKey).
func parseLimitKey(key string) (scope LimitScope, owner, name string, err error) {
	rest := strings.TrimPrefix(key, records.MetaLimit)
	owner, name, ok := strings.Cut(rest[min(1, len(rest)):], "\x00")
	if !ok || len(rest) == 0 {
		return 0, "", "", fmt.Errorf("limit record %q: %w", key, store.ErrCorrupt)
	}
	return LimitScope(rest[0]), owner, name, nil
}

func limitKey(scope LimitScope, owner, name string) string {
	return records.MetaLimit + string(scope) + owner + "\x00" + name
}

func (db *limitsDB) setLocked(scope LimitScope, owner, name string, v int64) {
	m := db.values[scope][owner]
	if m == nil {
		m = map[string]int64{}
		db.values[scope][owner] = m
	}
	m[name] = v
}

// SetLimit sets limit name of a user or vhost. Only max-connections is
// known; the user or vhost must exist.
func (b *Broker) SetLimit(scope LimitScope, owner, name string, value int64) error {
	if err := CheckLimitName(scope, name); err != nil {
		return err
	}
	if err := b.limitOwnerExists(scope, owner); err != nil {
		return err
	}
	var batch store.Batch
	batch.PutMeta(limitKey(scope, owner, name), records.EncodeLimit(value))
	if err := b.env.st.Apply(&batch, true); err != nil {
		return internalError("store limit", err)
	}
	b.limits.mu.Lock()
	b.limits.setLocked(scope, owner, name, value)
	b.limits.mu.Unlock()
	return nil
}

// DeleteLimit clears limit name of a user or vhost; NotFound when unset.
func (b *Broker) DeleteLimit(scope LimitScope, owner, name string) error {
	b.limits.mu.Lock()
	_, ok := b.limits.values[scope][owner][name]
	b.limits.mu.Unlock()
	if !ok {
		return errorf(NotFound, "no limit '%s' on '%s'", name, owner)
	}
	var batch store.Batch
	batch.DeleteMeta(limitKey(scope, owner, name))
	if err := b.env.st.Apply(&batch, true); err != nil {
		return internalError("delete limit", err)
	}
	b.limits.mu.Lock()
	b.limits.deleteLocked(scope, owner, name)
	b.limits.mu.Unlock()
	return nil
}

func (db *limitsDB) deleteLocked(scope LimitScope, owner, name string) {
	delete(db.values[scope][owner], name)
	if len(db.values[scope][owner]) == 0 {
		delete(db.values[scope], owner)
	}
}

// LimitsOf lists the limits set in scope, by user or vhost name; owner
// "" lists every one.
func (b *Broker) LimitsOf(scope LimitScope, owner string) []Limits {
	b.limits.mu.Lock()
	defer b.limits.mu.Unlock()
	var out []Limits
	for _, name := range slices.Sorted(maps.Keys(b.limits.values[scope])) {
		if owner == "" || owner == name {
			out = append(out, Limits{Name: name, Values: maps.Clone(b.limits.values[scope][name])})
		}
	}
	return out
}

// CheckLimitName refuses a limit name Sluice does not enforce in scope.
func CheckLimitName(scope LimitScope, name string) error {
	other := LimitMaxQueues
	if scope == UserLimit {
		other = LimitMaxChannels
	}
	if name == LimitMaxConnections || name == other {
		return nil
	}
	return errorf(InvalidArgument, "limit '%s' is not supported on a %s; Sluice knows %s and %s", name, scopeName(scope), LimitMaxConnections, other)
}

func scopeName(scope LimitScope) string {
	if scope == UserLimit {
		return "user"
	}
	return "vhost"
}

func (b *Broker) limitOwnerExists(scope LimitScope, owner string) error {
	if scope == UserLimit && !b.users.exists(owner) {
		return errorf(NotFound, "no user '%s'", owner)
	}
	if scope == VHostLimit && b.vhost(owner) == nil {
		return errorf(NotFound, "no vhost '%s'", owner)
	}
	return nil
}

// admit counts a new connection of user to vhost, or refuses it with
// NotAllowed and RabbitMQ's reason when a limit is reached. The returned
// func gives the slot back.
func (db *limitsDB) admit(user, vhost string) (release func(), err error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if max, ok := db.values[VHostLimit][vhost][LimitMaxConnections]; ok && max >= 0 && int64(db.open[VHostLimit][vhost]) >= max {
		return nil, errorf(NotAllowed, "access to vhost '%s' refused for user '%s': connection limit (%d) is reached", vhost, user, max)
	}
	if max, ok := db.values[UserLimit][user][LimitMaxConnections]; ok && max >= 0 && int64(db.open[UserLimit][user]) >= max {
		return nil, errorf(NotAllowed, "Connection refused for user '%s'. User connection limit (%d) is reached", user, max)
	}
	db.open[VHostLimit][vhost]++
	db.open[UserLimit][user]++
	var once sync.Once
	return func() {
		once.Do(func() {
			db.mu.Lock()
			defer db.mu.Unlock()
			db.decLocked(VHostLimit, vhost)
			db.decLocked(UserLimit, user)
		})
	}, nil
}

func (db *limitsDB) decLocked(scope LimitScope, owner string) {
	if db.open[scope][owner]--; db.open[scope][owner] <= 0 {
		delete(db.open[scope], owner)
	}
}

// admitChannel counts a new channel of user, or refuses it with
// NotAllowed and RabbitMQ's reason when its max-channels is reached.
func (db *limitsDB) admitChannel(user string) (release func(), err error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if max, ok := db.values[UserLimit][user][LimitMaxChannels]; ok && max >= 0 && int64(db.chans[user]) >= max {
		return nil, errorf(NotAllowed, "number of channels opened for user '%s' has reached the maximum allowed user limit of (%d)", user, max)
	}
	db.chans[user]++
	var once sync.Once
	return func() {
		once.Do(func() {
			db.mu.Lock()
			defer db.mu.Unlock()
			if db.chans[user]--; db.chans[user] <= 0 {
				delete(db.chans, user)
			}
		})
	}, nil
}

// checkQueues refuses a new queue of vhost when it holds n queues and its
// max-queues is n or less, with RabbitMQ's PRECONDITION_FAILED reason.
// Called with vhost.mu held.
func (db *limitsDB) checkQueues(vhost, queue string, n int) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if max, ok := db.values[VHostLimit][vhost][LimitMaxQueues]; ok && max >= 0 && int64(n) >= max {
		return errorf(PreconditionFailed, "cannot declare queue '%s': queue limit in vhost '%s' (%d) is reached", queue, vhost, max)
	}
	return nil
}
