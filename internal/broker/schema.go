package broker

// The schema registry: named JSON Schemas per vhost, for the x-schema
// argument of queues and exchanges. Schemas are durable metadata records
// (sch/<vhost>\0<name>), recovered by Open; their compiled forms are
// shared through a schema.Cache.

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"sync"

	"github.com/sluicemq/sluice/internal/records"
	"github.com/sluicemq/sluice/internal/schema"
	"github.com/sluicemq/sluice/internal/store"
)

func schemaKey(vhost, name string) string { return records.MetaSchema + vhost + "\x00" + name }

// SchemaInfo is a registered schema as the operator sees it.
type SchemaInfo struct {
	VHost    string
	Name     string
	Document json.RawMessage // the schema, compact JSON
	// UsedBy names the queues and exchanges whose x-schema is this
	// schema: "queue 'orders'", "exchange 'in'".
	UsedBy []string
}

// schemaRegistry holds every vhost's schemas.
//
// Lock order: writeMu → vhost.mu → mu. Publishes take only mu (for
// reading); declares take mu under vhost.mu.
type schemaRegistry struct {
	st    store.Store
	cache *schema.Cache

	// writeMu serializes puts and deletes, so that the store and the map
	// change in the same order.
	writeMu sync.Mutex

	mu      sync.RWMutex
	schemas map[string]map[string]*registeredSchema // vhost → name
}

type registeredSchema struct {
	doc      []byte // compact JSON
	compiled *schema.Schema
}

// openSchemas recovers the registry from the store.
func (b *Broker) openSchemas() error {
	r := &schemaRegistry{st: b.env.st, cache: schema.NewCache(), schemas: make(map[string]map[string]*registeredSchema)}
	err := scanDefs(b.env.st, records.MetaSchema, records.DecodeSchemaDef, func(d records.SchemaDef) {
		s, err := r.cache.Acquire(d.Doc)
		if err != nil {
			// It compiled when it was registered; a newer library may
			// disagree. Keep it listed: publishes against it are refused.
			b.env.log.Warn("recover schema: it no longer compiles", "vhost", d.VHost, "schema", d.Name, "err", err)
		}
		r.putLocked(d.VHost, d.Name, &registeredSchema{doc: d.Doc, compiled: s})
	})
	if err != nil {
		return err
	}
	b.env.schemas = r
	return nil
}

func (r *schemaRegistry) putLocked(vhost, name string, s *registeredSchema) (old *registeredSchema) {
	m := r.schemas[vhost]
	if m == nil {
		m = make(map[string]*registeredSchema)
		r.schemas[vhost] = m
	}
	old = m[name]
	m[name] = s
	return old
}

// lookup returns a registered schema, nil when there is none.
func (r *schemaRegistry) lookup(vhost, name string) *registeredSchema {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.schemas[vhost][name]
}

// exists reports whether a schema is registered.
func (r *schemaRegistry) exists(vhost, name string) bool { return r.lookup(vhost, name) != nil }

func validSchemaName(name string) error {
	switch {
	case name == "":
		return errorf(InvalidArgument, "schema name is empty")
	}
	return CheckName("schema", name) // names.go
}

// PutSchema registers (or replaces) a schema document: InvalidArgument with the
// compiler's message when it does not compile, NotFound for an unknown
// vhost. It reports whether the schema is new. A replaced schema applies
// to the next publishes of its users.
func (b *Broker) PutSchema(vhostName, name string, doc []byte) (created bool, err error) {
	if b.vhost(vhostName) == nil {
		return false, errorf(NotFound, "no vhost '%s'", vhostName)
	}
	if err := validSchemaName(name); err != nil {
		return false, err
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, doc); err != nil {
		return false, &Error{Code: InvalidArgument, Reason: "schema '" + name + "' is not JSON: " + err.Error(), Err: err}
	}
	r := b.env.schemas
	s, err := r.cache.Acquire(compact.Bytes())
	if err != nil {
		return false, &Error{Code: InvalidArgument, Reason: "schema '" + name + "' does not compile: " + err.Error(), Err: err}
	}
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	var batch store.Batch
	batch.PutMeta(schemaKey(vhostName, name), records.EncodeSchemaDef(records.SchemaDef{VHost: vhostName, Name: name, Doc: compact.Bytes()}))
	if err := b.env.st.Apply(&batch, true); err != nil {
		r.cache.Release(s)
		return false, internalError("store schema", err)
	}
	r.mu.Lock()
	old := r.putLocked(vhostName, name, &registeredSchema{doc: compact.Bytes(), compiled: s})
	r.mu.Unlock()
	if old != nil {
		r.cache.Release(old.compiled)
	}
	return old == nil, nil
}

// Schema returns one schema and its users.
func (b *Broker) Schema(vhostName, name string) (SchemaInfo, error) {
	vh := b.vhost(vhostName)
	if vh == nil {
		return SchemaInfo{}, errorf(NotFound, "no vhost '%s'", vhostName)
	}
	s := b.env.schemas.lookup(vhostName, name)
	if s == nil {
		return SchemaInfo{}, errorf(NotFound, "no schema '%s' in vhost '%s'", name, vhostName)
	}
	vh.mu.RLock()
	users := vh.schemaUsersLocked(name)
	vh.mu.RUnlock()
	return SchemaInfo{VHost: vhostName, Name: name, Document: s.doc, UsedBy: users}, nil
}

// Schemas lists the schemas of a vhost ("" for all), sorted by vhost and
// name.
func (b *Broker) Schemas(vhostName string) ([]SchemaInfo, error) {
	if vhostName != "" && b.vhost(vhostName) == nil {
		return nil, errorf(NotFound, "no vhost '%s'", vhostName)
	}
	r := b.env.schemas
	var out []SchemaInfo
	r.mu.RLock()
	for vhn, m := range r.schemas {
		if vhostName != "" && vhn != vhostName {
			continue
		}
		for name, s := range m {
			out = append(out, SchemaInfo{VHost: vhn, Name: name, Document: s.doc})
		}
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b SchemaInfo) int {
		if c := strings.Compare(a.VHost, b.VHost); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	for i := range out {
		if vh := b.vhost(out[i].VHost); vh != nil {
			vh.mu.RLock()
			out[i].UsedBy = vh.schemaUsersLocked(out[i].Name)
			vh.mu.RUnlock()
		}
	}
	return out, nil
}

// DeleteSchema removes a schema: NotFound when there is none,
// PreconditionFailed naming the queues and exchanges that use it.
func (b *Broker) DeleteSchema(vhostName, name string) error {
	vh := b.vhost(vhostName)
	if vh == nil {
		return errorf(NotFound, "no vhost '%s'", vhostName)
	}
	r := b.env.schemas
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	// Hold the topology so that no declare takes the schema meanwhile.
	vh.mu.Lock()
	defer vh.mu.Unlock()
	s := r.lookup(vhostName, name)
	if s == nil {
		return errorf(NotFound, "no schema '%s' in vhost '%s'", name, vhostName)
	}
	if users := vh.schemaUsersLocked(name); len(users) > 0 {
		return errorf(PreconditionFailed, "schema '%s' in vhost '%s' is in use by %s", name, vhostName, strings.Join(users, ", "))
	}
	var batch store.Batch
	batch.DeleteMeta(schemaKey(vhostName, name))
	if err := b.env.st.Apply(&batch, true); err != nil {
		return internalError("delete schema", err)
	}
	r.mu.Lock()
	delete(r.schemas[vhostName], name)
	r.mu.Unlock()
	r.cache.Release(s.compiled)
	return nil
}

// schemaUsersLocked names the queues and exchanges whose x-schema is
// name, sorted. Called with vh.mu held.
func (vh *vhost) schemaUsersLocked(name string) []string {
	var xs, qs []string
	for _, x := range vh.exchanges {
		if s, _ := x.args["x-schema"].(string); s == name {
			xs = append(xs, "exchange '"+x.name+"'")
		}
	}
	for _, q := range vh.queues {
		if q.opts().Validation.Schema == name {
			qs = append(qs, "queue '"+q.name+"'")
		}
	}
	slices.Sort(xs)
	slices.Sort(qs)
	return append(qs, xs...)
}
