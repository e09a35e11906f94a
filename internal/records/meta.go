package records

// The definitions kept by the broker's other files: permissions, schemas,
// vhosts, delayed publishes, audit entries and the dead-letter workflow's
// task records (layouts in doc.go).

import (
	"slices"
)

// Metadata key prefixes of the records of this file.
const (
	MetaPermission   = "perm/"       // perm/<vhost>\0<user>
	MetaPermsSeeded  = "perm-seeded" // the default permissions were granted once
	MetaAudit        = "audit/"      // audit/<unix nanos, 20 digits>-<random>
	MetaSchema       = "sch/"        // sch/<vhost>\0<name>
	MetaVHost        = "vh/"         // vh/<name>
	MetaPolicy       = "pol/"        // pol/<u|o><vhost>\0<name>
	MetaTask         = "task/"       // task/<the workflow's key>
	MetaLimit        = "lim/"        // lim/<u|v><user or vhost>\0<limit name>
	MetaDelayQueueID = "delay-queue-id"
)

// PermissionDef is the stored form of a user's permission on a vhost (the
// same fields as access.Permission, which converts to and from it).
type PermissionDef struct {
	User, VHost            string
	Configure, Write, Read string
}

func EncodePermission(p PermissionDef) []byte {
	v := []byte{V1}
	for _, s := range []string{p.User, p.VHost, p.Configure, p.Write, p.Read} {
		v = appendString(v, s)
	}
	return v
}

func DecodePermission(v []byte) (PermissionDef, error) {
	r, err := versioned(v)
	if err != nil {
		return PermissionDef{}, err
	}
	p := PermissionDef{User: r.string(), VHost: r.string(), Configure: r.string(), Write: r.string(), Read: r.string()}
	return p, r.done()
}

// SchemaDef is the stored form of a schema.
type SchemaDef struct {
	VHost, Name string
	Doc         []byte
}

func EncodeSchemaDef(d SchemaDef) []byte {
	b := []byte{V1}
	b = appendString(b, d.VHost)
	b = appendString(b, d.Name)
	return append(b, d.Doc...)
}

func DecodeSchemaDef(v []byte) (SchemaDef, error) {
	r, err := versioned(v)
	if err != nil {
		return SchemaDef{}, err
	}
	var d SchemaDef
	d.VHost, d.Name = r.string(), r.string()
	if r.err != nil {
		return SchemaDef{}, r.err
	}
	d.Doc = slices.Clone(r.b)
	return d, nil
}

// EncodeDelayed encodes a delayed publish: the vhost, then the message
// record.
func EncodeDelayed(vhost string, rec []byte) []byte {
	b := appendString([]byte{V1}, vhost)
	return append(b, rec...)
}

// DecodeDelayed decodes a delayed publish; rec aliases v.
func DecodeDelayed(v []byte) (vhost string, rec []byte, err error) {
	r, err := versioned(v)
	if err != nil {
		return "", nil, err
	}
	vhost = r.string()
	if r.err != nil {
		return "", nil, r.err
	}
	return vhost, r.b, nil
}

// EncodeVHost encodes a durable vhost's record.
func EncodeVHost(name string) []byte { return appendString([]byte{V1}, name) }

func DecodeVHost(v []byte) (string, error) {
	r, err := versioned(v)
	if err != nil {
		return "", err
	}
	name := r.string()
	return name, r.done()
}

// EncodeOpaque prefixes a value whose bytes belong to someone else (an
// audit entry's JSON, a workflow task) with the version byte.
func EncodeOpaque(v []byte) []byte { return append([]byte{V1}, v...) }

// DecodeOpaque returns what EncodeOpaque was given, aliasing b; what names
// the record in the error.
func DecodeOpaque(what string, b []byte) ([]byte, error) {
	if len(b) < 1 || b[0] != V1 {
		return nil, Corruptf("%s", what)
	}
	return b[1:], nil
}
