package broker

// Users and permissions as the operator manages them. Users are the
// userDB's (users.go); permissions are metadata records of their own, read
// from the store when asked (the store is the only copy, so there is no
// cache to keep coherent). Writes are synced before the call returns.

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sluicemq/sluice/internal/access"
	"github.com/sluicemq/sluice/internal/records"
	"github.com/sluicemq/sluice/internal/store"
)

// User tags with a meaning, as RabbitMQ's.
const (
	TagAdministrator = "administrator"
	TagManagement    = "management"
	TagMonitoring    = "monitoring"
	TagPolicymaker   = "policymaker"
)

// UserInfo describes a user. PasswordHash is the stored hash as
// definitions carry it, in HashingAlgorithm: bcrypt's string, or
// RabbitMQ's base64(salt ‖ SHA-256(salt ‖ password)) for a hash imported
// from RabbitMQ whose user has not logged in since.
type UserInfo struct {
	Name             string
	Tags             []string
	PasswordHash     string
	HashingAlgorithm string
	LoopbackOnly     bool
}

// HasTag reports whether u has tag.
func (u UserInfo) HasTag(tag string) bool { return slices.Contains(u.Tags, tag) }

func userInfo(u records.UserDef) UserInfo {
	h := userHash(u)
	return UserInfo{Name: u.Name, Tags: slices.Clone(u.Tags), LoopbackOnly: u.LoopbackOnly,
		PasswordHash: h.String(), HashingAlgorithm: h.Algorithm()}
}

// Users lists the users, sorted by name.
func (b *Broker) Users() []UserInfo {
	b.users.mu.RLock()
	defer b.users.mu.RUnlock()
	out := make([]UserInfo, 0, len(b.users.users))
	for _, u := range b.users.users {
		out = append(out, userInfo(u))
	}
	slices.SortFunc(out, func(a, b UserInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// User describes one user.
func (b *Broker) User(name string) (UserInfo, error) {
	b.users.mu.RLock()
	defer b.users.mu.RUnlock()
	u, ok := b.users.users[name]
	if !ok {
		return UserInfo{}, errorf(NotFound, "no user '%s'", name)
	}
	return userInfo(u), nil
}

// PutUser creates or updates a user. Exactly one of password (stored as
// bcrypt) and passwordHash (bcrypt's string, or RabbitMQ's base64 salted
// SHA-256) may be set; with neither, an existing user keeps its password
// and a new one cannot log in with any password. An update keeps the
// user's loopback restriction.
func (b *Broker) PutUser(name, password, passwordHash string, tags []string) (created bool, err error) {
	if err := CheckName("user", name); err != nil {
		return false, err
	}
	if password != "" && passwordHash != "" {
		return false, errorf(InvalidArgument, "give password or password_hash, not both")
	}
	var h access.Hash
	switch {
	case password != "":
		if h, err = access.NewHash(password, b.users.cost); err != nil {
			return false, errorf(InvalidArgument, "%v", err)
		}
	case passwordHash != "":
		if h, err = access.ParseHash(passwordHash, ""); err != nil {
			return false, errorf(InvalidArgument, "%v", err)
		}
	}
	db := b.users
	db.mu.Lock()
	defer db.mu.Unlock()
	old, exists := db.users[name]
	u := records.UserDef{Name: name, Tags: slices.Clone(tags), LoopbackOnly: old.LoopbackOnly}
	if h.IsZero() && exists {
		h = userHash(old)
	}
	setUserHash(&u, h)
	var batch store.Batch
	batch.PutMeta(records.UserKey(name), records.EncodeUserDef(u))
	if err := b.env.st.Apply(&batch, true); err != nil {
		return false, internalError("store user", err)
	}
	db.users[name] = u
	return !exists, nil
}

// DeleteUser removes a user and its permissions.
func (b *Broker) DeleteUser(name string) error {
	perms, err := b.Permissions("", name)
	if err != nil {
		return err
	}
	db := b.users
	db.mu.Lock()
	defer db.mu.Unlock()
	if _, ok := db.users[name]; !ok {
		return errorf(NotFound, "no user '%s'", name)
	}
	var batch store.Batch
	batch.DeleteMeta(records.UserKey(name))
	for _, p := range perms {
		batch.DeleteMeta(permissionKey(p.VHost, p.User))
	}
	if err := b.env.st.Apply(&batch, true); err != nil {
		return internalError("delete user", err)
	}
	delete(db.users, name)
	db.verifier.Forget(name)
	db.permGen.Add(1)
	return nil
}

func permissionKey(vhost, user string) string { return records.MetaPermission + vhost + "\x00" + user }

// Permissions lists permissions, optionally of one vhost and/or one user.
func (b *Broker) Permissions(vhostName, user string) ([]Permission, error) {
	var (
		out  []Permission
		derr error
	)
	err := b.env.st.ScanMeta(records.MetaPermission, func(key string, v []byte) bool {
		p, err := records.DecodePermission(v)
		if err != nil {
			derr = fmt.Errorf("permission %q: %w", key, err)
			return false
		}
		if (vhostName == "" || p.VHost == vhostName) && (user == "" || p.User == user) {
			out = append(out, Permission(p))
		}
		return true
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		return nil, internalError("read permissions", err)
	}
	return out, nil
}

// Permission returns a user's permission on a vhost.
func (b *Broker) Permission(vhostName, user string) (Permission, error) {
	v, err := b.env.st.GetMeta(permissionKey(vhostName, user))
	if errors.Is(err, store.ErrNotFound) {
		return Permission{}, errorf(NotFound, "no permissions for user '%s' on vhost '%s'", user, vhostName)
	}
	if err != nil {
		return Permission{}, internalError("read permission", err)
	}
	p, err := records.DecodePermission(v)
	if err != nil {
		return Permission{}, internalError("decode permission", err)
	}
	return Permission(p), nil
}

// SetPermission grants a user access to a vhost. The regular expressions
// must compile (an empty one matches nothing, as RabbitMQ's "^$").
func (b *Broker) SetPermission(p Permission) error {
	if b.vhost(p.VHost) == nil {
		return errorf(NotFound, "no vhost '%s'", p.VHost)
	}
	if _, err := b.User(p.User); err != nil {
		return err
	}
	if err := access.Compile(p); err != nil {
		return errorf(InvalidArgument, "%v", err)
	}
	var batch store.Batch
	batch.PutMeta(permissionKey(p.VHost, p.User), records.EncodePermission(records.PermissionDef(p)))
	if err := b.env.st.Apply(&batch, true); err != nil {
		return internalError("store permission", err)
	}
	b.users.permGen.Add(1)
	return nil
}

// DeletePermission revokes a user's access to a vhost.
func (b *Broker) DeletePermission(vhostName, user string) error {
	if _, err := b.Permission(vhostName, user); err != nil {
		return err
	}
	var batch store.Batch
	batch.DeleteMeta(permissionKey(vhostName, user))
	if err := b.env.st.Apply(&batch, true); err != nil {
		return internalError("delete permission", err)
	}
	b.users.permGen.Add(1)
	return nil
}

// SeedPermissions gives the default user full access to vhost "/" the
// first time it runs on a store, as RabbitMQ does for guest.
func (b *Broker) SeedPermissions() error {
	if _, err := b.env.st.GetMeta(records.MetaPermsSeeded); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return internalError("read permissions marker", err)
	}
	var batch store.Batch
	if u := b.cfg.DefaultUser; u != "" && b.users.exists(u) {
		batch.PutMeta(permissionKey("/", u), records.EncodePermission(records.PermissionDef{User: u, VHost: "/", Configure: ".*", Write: ".*", Read: ".*"}))
	}
	batch.PutMeta(records.MetaPermsSeeded, []byte{1})
	if err := b.env.st.Apply(&batch, true); err != nil {
		return internalError("seed permissions", err)
	}
	return nil
}
