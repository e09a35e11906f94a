package broker

// Virtual hosts beyond "/": created and deleted by the operator, durable
// as a metadata record each (vh/<name>), loaded by Open before the
// definitions they hold. "/" always exists and cannot be deleted.
//
// Broker.vhMu guards the vhost map after Open; lookups take it for
// reading and release it before touching the vhost (it is a leaf). Open's
// recovery reads the map without it: nothing else runs yet.
//
// Deleting a vhost removes it from the map (new connections are refused),
// then, under its vhost.mu, deletes its queues with their messages and its
// exchanges with their bindings, and marks it deleted so that a client
// still connected cannot create anything in it; then its permissions,
// schemas and its record. Closing the connections still open to it is
// the front door's job (the HTTP API closes them with 320).

import (
	"fmt"
	"slices"

	"github.com/sluicemq/sluice/internal/records"
	"github.com/sluicemq/sluice/internal/store"
)

func vhostKey(name string) string { return records.MetaVHost + name }

// vhost returns the named vhost, nil when there is none.
func (b *Broker) vhost(name string) *vhost {
	b.vhMu.RLock()
	defer b.vhMu.RUnlock()
	return b.vhosts[name]
}

// vhostList returns the vhosts, sorted by name.
func (b *Broker) vhostList() []*vhost {
	b.vhMu.RLock()
	out := make([]*vhost, 0, len(b.vhosts))
	for _, vh := range b.vhosts {
		out = append(out, vh)
	}
	b.vhMu.RUnlock()
	slices.SortFunc(out, func(x, y *vhost) int {
		switch {
		case x.name < y.name:
			return -1
		case x.name > y.name:
			return 1
		}
		return 0
	})
	return out
}

// loadVHosts creates the durable vhosts recorded in the store (Open).
func (b *Broker) loadVHosts() error {
	var derr error
	err := b.env.st.ScanMeta(records.MetaVHost, func(key string, v []byte) bool {
		name, err := records.DecodeVHost(v)
		if err != nil {
			derr = fmt.Errorf("vhost %q: %w", key, err)
			return false
		}
		if b.vhosts[name] == nil {
			b.vhosts[name] = newVHost(name, b.env)
		}
		return true
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		return fmt.Errorf("open broker: load vhosts: %w", err)
	}
	return nil
}

// PutVHost creates a vhost (durably) with the standard exchanges; it
// reports false when the vhost exists already.
func (b *Broker) PutVHost(name string) (created bool, err error) {
	if name == "" {
		return false, errorf(InvalidArgument, "vhost name is empty")
	}
	if err := CheckName("vhost", name); err != nil { // names.go
		return false, err
	}
	b.vhMu.Lock()
	defer b.vhMu.Unlock()
	if b.vhosts[name] != nil {
		return false, nil
	}
	var batch store.Batch
	batch.PutMeta(vhostKey(name), records.EncodeVHost(name))
	if err := b.env.st.Apply(&batch, true); err != nil {
		return false, internalError("store vhost", err)
	}
	b.vhosts[name] = newVHost(name, b.env)
	return true, nil
}

// DeleteVHost deletes a vhost and everything in it: queues (with their
// messages), exchanges, bindings, permissions and schemas.
func (b *Broker) DeleteVHost(name string) error {
	if name == "/" {
		return errorf(PreconditionFailed, "vhost '/' cannot be deleted")
	}
	b.vhMu.Lock()
	vh := b.vhosts[name]
	delete(b.vhosts, name)
	b.vhMu.Unlock()
	if vh == nil {
		return errorf(NotFound, "no vhost '%s'", name)
	}
	if err := vh.clear(); err != nil {
		return err
	}
	var batch store.Batch
	if perms, err := b.Permissions(name, ""); err == nil {
		for _, p := range perms {
			batch.DeleteMeta(permissionKey(p.VHost, p.User))
		}
	}
	if schemas, err := b.Schemas(name); err == nil {
		for _, s := range schemas {
			if err := b.DeleteSchema(name, s.Name); err != nil {
				b.env.log.Warn("delete vhost: delete schema", "vhost", name, "schema", s.Name, "err", err)
			}
		}
	}
	if err := b.env.policies.forgetVHost(name); err != nil { // policy.go
		b.env.log.Warn("delete vhost: delete policies", "vhost", name, "err", err)
	}
	batch.DeleteMeta(vhostKey(name))
	if err := b.env.st.Apply(&batch, true); err != nil {
		return internalError("delete vhost", err)
	}
	b.users.permGen.Add(1) // connections to it lose their permissions
	return nil
}

// clear deletes every queue and exchange of vh and marks it deleted.
func (vh *vhost) clear() error {
	err := vh.topology(func(b *store.Batch) error {
		vh.deleted = true
		for _, q := range vh.queues {
			vh.deleteQueueLocked(q, false)
		}
		for _, x := range vh.exchanges {
			if vh.exchanges[x.name] == x { // auto-delete may have taken it already
				vh.deleteExchangeLocked(b, x)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return vh.env.syncDefs() // the queues' deletions, deferred by deleteQueueLocked
}

// goneLocked refuses to create anything in a deleted vhost.
func (vh *vhost) goneLocked() error {
	if vh.deleted {
		return errorf(NotFound, "no vhost '%s'", vh.name)
	}
	return nil
}
