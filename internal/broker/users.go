package broker

// Users: the table login reads. Passwords are hashed and checked by
// package access (bcrypt; RabbitMQ's salted SHA-256 for imported hashes,
// replaced by bcrypt at the user's next successful login); failed logins
// are throttled per source and logged in aggregate there too. The table
// is the store's user records, loaded at Open and written through.

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicemq/sluice/internal/access"
	"github.com/sluicemq/sluice/internal/records"
	"github.com/sluicemq/sluice/internal/store"
)

type userDB struct {
	st   store.Store
	log  *slog.Logger
	cost int // bcrypt cost of new passwords

	verifier *access.Verifier
	throttle *access.Throttle
	failures *access.Failures

	mu    sync.RWMutex // guards users
	users map[string]records.UserDef

	// permGen moves whenever a permission or a user changes, so that
	// connections reload their permissions (permissions.go).
	permGen atomic.Uint64
}

// failureWindow is how long failed logins of one source are gathered
// into one log line.
const failureWindow = time.Minute

// openUsers loads the users, creating Config's default user on first start.
func openUsers(st store.Store, cfg Config) (*userDB, error) {
	tcfg := cfg.LoginThrottle
	if tcfg.Now == nil {
		tcfg.Now = cfg.Now
	}
	throttle, err := access.NewThrottle(tcfg)
	if err != nil {
		return nil, err
	}
	db := &userDB{st: st, log: cfg.Logger, cost: cfg.PasswordCost, verifier: access.NewVerifier(cfg.PasswordCost), throttle: throttle,
		failures: access.NewFailures(cfg.Logger, failureWindow, cfg.Now), users: make(map[string]records.UserDef)}
	var derr error
	err = st.ScanMeta(records.MetaUser, func(key string, v []byte) bool {
		u, err := records.DecodeUserDef(v)
		if err != nil {
			derr = fmt.Errorf("user %q: %w", key, err)
			return false
		}
		db.users[u.Name] = u
		return true
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		return nil, fmt.Errorf("open broker: load users: %w", err)
	}
	if len(db.users) == 0 && cfg.DefaultUser != "" {
		h, err := access.NewHash(cfg.DefaultPassword, db.cost)
		if err != nil {
			return nil, fmt.Errorf("open broker: default user: %w", err)
		}
		u := records.UserDef{Name: cfg.DefaultUser, Tags: []string{TagAdministrator}, LoopbackOnly: true}
		setUserHash(&u, h)
		var b store.Batch
		b.PutMeta(records.UserKey(u.Name), records.EncodeUserDef(u))
		if err := st.Apply(&b, true); err != nil {
			return nil, fmt.Errorf("open broker: create default user: %w", err)
		}
		db.users[u.Name] = u
	}
	return db, nil
}

// userHash is the password hash a user record holds.
func userHash(u records.UserDef) access.Hash { return access.FromRecord(u.Salt, u.Hash) }

func setUserHash(u *records.UserDef, h access.Hash) { u.Salt, u.Hash = h.Record() }

// Login is one attempt to log in through a front door.
type Login struct {
	Door     string // "amqp", "http": for the log and the counters
	Remote   string // the client's address, "host:port"
	User     string
	Password string
}

// errInvalidCredentials is what every refused login is told, whatever the
// reason (the log has it): a user restricted to loopback hears the same
// from elsewhere for the right password as for a wrong one.
func errInvalidCredentials(user string) error {
	return errorf(AccessRefused, "user '%s' - invalid credentials", user)
}

// authenticate checks a login by its password.
func (db *userDB) authenticate(l Login) error {
	return db.admit(l, func(u records.UserDef) bool { return db.verifier.Verify(u.Name, userHash(u), l.Password) })
}

// authenticateExternal admits a user a verified TLS client certificate
// names (SASL EXTERNAL): no password, every other rule of a login.
func (db *userDB) authenticateExternal(l Login) error {
	return db.admit(l, func(records.UserDef) bool { return true })
}

// admit checks a login: a source serving a throttle delay is refused
// unchecked (AccessRefused wrapping *access.Throttled); an unknown user,
// a loopback-only user from elsewhere and a failed proof are refused
// alike, counted against the source and logged.
func (db *userDB) admit(l Login, proves func(records.UserDef) bool) error {
	src := access.SourceOf(l.Remote)
	if wait := db.throttle.Wait(src.Key); wait > 0 {
		db.failures.Throttled(l.Door, l.Remote, src, l.User)
		t := &access.Throttled{Wait: wait}
		return &Error{Code: AccessRefused, Reason: t.Error(), Err: t}
	}
	db.mu.RLock()
	u, ok := db.users[l.User]
	db.mu.RUnlock()
	var why string
	switch {
	case !ok:
		db.verifier.VerifyUnknown(l.Password)
		why = "no such user"
	case u.LoopbackOnly && !src.Loopback:
		// Not checked, and as slow as a check: neither the answer nor
		// its timing tells whether the password was right.
		db.verifier.VerifyUnknown(l.Password)
		why = "user may log in from loopback only"
	case !proves(u):
		why = "wrong password"
	}
	if why != "" {
		db.throttle.Failed(src.Key)
		db.failures.Failed(l.Door, l.Remote, src, l.User, why)
		return errInvalidCredentials(l.User)
	}
	if l.Password != "" && userHash(u).Legacy() {
		db.upgrade(u, l.Password)
	}
	return nil
}

// upgrade replaces u's SHA-256 hash with bcrypt of the password that just
// verified, unless the user changed meanwhile. A failure leaves the old
// hash, which still works; it is logged, not the login's concern.
func (db *userDB) upgrade(u records.UserDef, password string) {
	h, err := access.NewHash(password, db.cost)
	if err != nil {
		return // longer than bcrypt takes: stays SHA-256
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	cur, ok := db.users[u.Name]
	if !ok || !userHash(cur).Equal(userHash(u)) {
		return
	}
	setUserHash(&cur, h)
	var b store.Batch
	b.PutMeta(records.UserKey(cur.Name), records.EncodeUserDef(cur))
	if err := db.st.Apply(&b, true); err != nil {
		db.log.Error("upgrade password hash to bcrypt", "user", u.Name, "err", err)
		return
	}
	db.users[cur.Name] = cur
}

func (db *userDB) exists(name string) bool {
	db.mu.RLock()
	defer db.mu.RUnlock()
	_, ok := db.users[name]
	return ok
}

// LoginFailures returns the failed and throttled logins since Open, by
// door.
func (b *Broker) LoginFailures() access.FailureCounts { return b.users.failures.Counts() }
