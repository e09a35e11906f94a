package broker

// Users: just enough for login. Passwords are kept as salted SHA-256, as
// RabbitMQ's default rabbit_password_hashing_sha256 does.

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/sluicemq/sluice/internal/store"
)

type userDB struct {
	mu    sync.RWMutex
	users map[string]userDef

	// permGen moves whenever a permission or a user changes, so that
	// connections reload their permissions (permissions.go).
	permGen atomic.Uint64
}

// openUsers loads the users, creating Config's default user on first start.
func openUsers(st store.Store, cfg Config) (*userDB, error) {
	db := &userDB{users: make(map[string]userDef)}
	var derr error
	err := st.ScanMeta(metaUser, func(key string, v []byte) bool {
		u, err := decodeUserDef(v)
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
		u := newUser(cfg.DefaultUser, cfg.DefaultPassword, []string{"administrator"}, true)
		var b store.Batch
		b.PutMeta(userKey(u.Name), encodeUserDef(u))
		if err := st.Apply(&b, true); err != nil {
			return nil, fmt.Errorf("open broker: create default user: %w", err)
		}
		db.users[u.Name] = u
	}
	return db, nil
}

func newUser(name, password string, tags []string, loopbackOnly bool) userDef {
	salt := make([]byte, 4)
	_, _ = rand.Read(salt)
	return userDef{Name: name, Salt: salt, Hash: passwordHash(salt, password), Tags: tags, LoopbackOnly: loopbackOnly}
}

func passwordHash(salt []byte, password string) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(password))
	return h.Sum(nil)
}

func (db *userDB) authenticate(name, password string, loopback bool) error {
	db.mu.RLock()
	u, ok := db.users[name]
	db.mu.RUnlock()
	if !ok || subtle.ConstantTimeCompare(passwordHash(u.Salt, password), u.Hash) != 1 {
		return errorf(AccessRefused, "user '%s' - invalid credentials", name)
	}
	if u.LoopbackOnly && !loopback {
		return errorf(AccessRefused, "user '%s' can only connect via localhost", name)
	}
	return nil
}

func (db *userDB) authenticateExternal(name string, loopback bool) error {
	db.mu.RLock()
	u, ok := db.users[name]
	db.mu.RUnlock()
	if !ok {
		return errorf(AccessRefused, "user '%s' - no such user for the client certificate", name)
	}
	if u.LoopbackOnly && !loopback {
		return errorf(AccessRefused, "user '%s' can only connect via localhost", name)
	}
	return nil
}

func (db *userDB) exists(name string) bool {
	db.mu.RLock()
	defer db.mu.RUnlock()
	_, ok := db.users[name]
	return ok
}
