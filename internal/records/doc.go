// Package records is the broker's encoding of what it keeps in the store:
// the pure functions that turn a message, its index entry, its delivery
// state and every definition into the bytes of a store value or metadata
// key, and back. It knows the store's and the message package's types and
// nothing of the broker: the broker decides what to write and when, this
// package only how it looks on disk. Where each value lives (which keyspace,
// which key) is package pebblestore's; see its doc.
//
// Every value starts with a version byte. Decoding checks every length and
// never panics on hostile or torn input; each of its errors wraps ErrRecord,
// a store.ErrCorrupt. Since the bytes are on disk in existing data
// directories, a layout here never changes in place: a new layout takes a
// new version byte and the decoder keeps reading the old one (golden_test.go
// holds the bytes the first layouts wrote).
//
// # Notation
//
//	u8            one byte
//	u32be, u64be  fixed-width big-endian unsigned integers
//	uvarint       encoding/binary's unsigned varint
//	varint        encoding/binary's signed (zig-zag) varint
//	str           uvarint(length) | bytes
//	props         an AMQP basic class property list: property flags (u16be)
//	              and the present properties in class order, as
//	              message.ReadProperties reads it
//	table         an AMQP field table: u32be length | entries in sorted key
//	              order (message.AppendTable)
//	bits          a byte of flags, bit 0 first in the order listed
//	rest          every byte to the end of the value
//
// # Message record (store message keyspace, written once)
//
//	 0        1        2                10
//	┌────────┬────────┬────────────────┬───────────┬─────────────┬────────┬───────────┬──────┐
//	│ 0x01   │ flags  │ published      │ exchange  │ routing key │ plen   │ props     │ body │
//	│ u8     │ u8     │ u64be, unix ms │ str       │ str         │ u32be  │ plen bytes│ rest │
//	└────────┴────────┴────────────────┴───────────┴─────────────┴────────┴───────────┴──────┘
//	flags: bit 0 FlagPersistent (delivery-mode 2)
//
// The props are the bytes the publisher sent in its content header
// (AppendRecordHeadRaw) unless the broker changed a property or the flags
// carried a bit that names no property; then they are the broker's
// encoding (AppendRecordHead, which writes a table's keys sorted). Both
// are one layout for every reader, so the version stays 0x01: a record
// of either kind decodes alike, and SplitRecord hands the bytes to a
// delivery that writes them to the consumer as they are (see
// docs/decisions.md, "Properties as sent").
//
// The header (RecordHeader, 10 bytes) is at fixed offsets so RecordFlags and
// RecordPublished read it without decoding, and a draft's publish time is
// patched in place (broker.Draft). The body is last and uncopied: decoding
// aliases it, and a publish receives the body straight into the record's
// tail. The publish time lets a restart restore message TTLs.
//
// # Shared record (store message keyspace, instead of a message record)
//
// A message routed to two or more durable queues keeps its property list
// and body once, as a shared body (store.Bodies), and each durable queue
// gets a shared record naming it (shared_body.go):
//
//	 0        1        2                10
//	┌────────┬────────┬────────────────┬───────────┬─────────────┬──────────────┐
//	│ 0x02   │ flags  │ published      │ exchange  │ routing key │ body id      │
//	│ u8     │ u8     │ u64be, unix ms │ str       │ str         │ uvarint      │
//	└────────┴────────┴────────────────┴───────────┴─────────────┴──────────────┘
//	shared body: plen u32be | props | body   (the message record's tail)
//
// JoinShared puts the two together again into the version 1 record they
// were cut from; the broker does so on every read, so nothing past its
// store view sees a version 2 record.
//
// # Index entry (store index keyspace, written once, with its record)
//
//	┌──────┬───────┬─────────────┬────────────────────┬──────────────┬──────────┐
//	│ 0x01 │ flags │ body size   │ published (unix ms)│ ttl (ms, -1) │ priority │
//	│ u8   │ u8    │ uvarint     │ varint             │ varint       │ u8       │
//	└──────┴───────┴─────────────┴────────────────────┴──────────────┴──────────┘
//	flags: bit 0 FlagPersistent; at most MaxIndexLen (23) bytes
//
// What a restart needs of a message without reading its record
// (store.Store.ScanIndex); IndexOfRecord derives it from a record.
//
// # Per-message state (store state keyspace, mutable)
//
//	version 1  ┌──────┬────────────────┐   delivered, no retry wait
//	           │ 0x01 │ uvarint count  │
//	           └──────┴────────────────┘
//	version 2  ┌──────┬────────────────┬──────────────────────┐   waiting out a retry backoff
//	           │ 0x02 │ uvarint count  │ varint due (unix ms) │
//	           └──────┴────────────────┴──────────────────────┘
//	mark       ┌──────┬────────────────┐   at seq MarkSeq (2^64-1) of a queue only:
//	           │ 0x03 │ uvarint mark   │   every stored message below mark was delivered
//	           └──────┴────────────────┘
//
// The three share the state keyspace, so their first bytes differ;
// DecodeState reads 1 and 2, DecodeMark only 3.
//
// # Metadata (store meta keyspace: key → value)
//
// Names in keys are joined with NUL (0x00), which AMQP short strings may
// hold in theory but no client sends; every value repeats the names, so a
// key is only an index and recovery reads the value.
//
//	key                                          value
//	-------------------------------------------  -----------------------------------------------
//	x/<vhost>\0<name>                            exchange
//	q/<vhost>\0<name>                            queue
//	b/<vhost>\0<src>\0<q|e><dst>\0<key>\0<hex>   binding (<hex>: its arguments' table, hex)
//	qn/<vhost>\0<name>                           queue node: a classic queue's node in a cluster (shared.go)
//	qid/<16 hex digits of the queue id>          queue id flags
//	next-queue-id                                queue id counter: the next queue id
//	delay-queue-id                               queue id counter: the delay queue's id
//	u/<name>                                     user
//	perm/<vhost>\0<user>                         permission
//	perm-seeded                                  marker (0x01): default permissions granted once
//	sch/<vhost>\0<name>                          schema
//	vh/<name>                                    vhost
//	pol/<u|o><vhost>\0<name>                     policy
//	lim/<u|v><user or vhost>\0<limit name>       limit
//	audit/<unix nanos, 20 digits>-<random>       opaque: 0x01 | the entry's JSON
//	task/<the workflow's key>                    opaque: 0x01 | the dead-letter workflow's bytes
//
// The values:
//
//	exchange          0x01 | str vhost | str name | str type | bits(durable, auto-delete, internal) | table args
//	queue             0x01 | str vhost | str name | uvarint queue id | bits(auto-delete) | table args
//	queue node        0x01 | str node
//	binding           0x01 | str vhost | str source | bits(to-exchange) | str destination | str routing key | table args
//	user              0x01 | str name | str salt | str hash | uvarint n | n × str tag | bits(loopback-only)
//	permission        0x01 | str user | str vhost | str configure | str write | str read
//	schema            0x01 | str vhost | str name | document (rest)
//	vhost             0x01 | str name
//	opaque            0x01 | payload (rest)
//	queue id flags    0x01 | bits(durable)
//	queue id counter  0x01 | uvarint id (ids start at 1)
//	limit             0x01 | varint value (negative: no limit)
//	policy            0x01 | the broker's Policy as JSON (rest; broker/policy.go)
//
// A delayed publish is a message record in the hidden delay queue, the
// message's vhost in front:
//
//	┌──────┬───────────┬─────────────────────────────┐
//	│ 0x01 │ str vhost │ message record (rest)       │
//	└──────┴───────────┴─────────────────────────────┘
//
// Not here: the quorum-queue forwarding request (broker/quorum.go) travels
// between nodes and is never stored.
//
// # Values written before their version byte
//
// An earlier Sluice wrote four of these values bare; existing stores hold
// them, so their decoders (scalars.go) read both layouts, telling them
// apart by the first byte or the length, and the broker rewrites every
// bare one in its current layout once, at open (broker/migrate.go):
//
//	queue id flags    bits(durable) alone: one byte 0x00 or 0x01 (the current value has two)
//	queue id counter  the id in decimal ASCII: starts with '0'…'9'
//	limit             the value in signed decimal ASCII: starts with '-' or '0'…'9'
//	policy            the JSON alone: starts with '{'
//
// Any other first byte is an unknown version (a newer Sluice's layout):
// the open fails naming the key, before anything is rewritten.
package records
