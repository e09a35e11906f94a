// Package broker is Sluice's domain: vhosts, exchanges and routing, queues,
// bindings, consumers, delivery, acknowledgements, prefetch, transactions,
// direct reply-to and the users that may log in. It knows nothing of
// sockets, HTTP or file formats: the front doors (amqpserver, httpapi) call
// its methods, and it keeps its durable state in a store.Store.
//
// # Storage
//
// Every message a queue holds is a record in the store, keyed (queue id,
// seq); a queue's in-memory index keeps only a 24-byte entry per message
// (seq, expiry, size, delivery count, flags). Bodies are read back from the store
// for delivery, through a bounded cache that holds the records of freshly
// published messages until their first delivery, so a backlog lives in the
// store, not in RAM. A message routed to two or more durable queues keeps its
// body once, shared, and each queue's record names it; the broker's store
// view joins them on every read and housekeeping sweeps the bodies no queue
// refers to any more (shared.go).
//
// Every write goes through one write pipeline, the store's
// store.Pipeline (commit.go says what the broker gives it). A publish is
// an intent: the pipeline's goroutine assigns each routed message its seq
// in every target queue, writes the records of many publishers as one
// Batch and applies it once — synced when any message in the group is
// persistent and routed to a durable queue (group commit) — and its
// completion goroutine, in order and once the group is durable, adds the
// entries to the queues' indexes, wakes them and calls each publisher's
// done. Transient messages take the same path unsynced. Non-durable queues
// keep their messages in the store too (unsynced); their leftovers are
// dropped by the next Open. Because a message enters a queue's index only
// after its record was applied, deliveries, acks and state changes always
// follow the record's write. A queue does not apply those changes itself:
// it defers them, under its lock, to the pipeline (Defer), which applies
// them unsynced, in order, many settles per batch; a synced write carries
// everything deferred before it. Definitions (exchange declares, binds,
// deletes) and purges are deferred the same way under their locks and
// synced (Pipeline.Sync) after the locks are released; a new queue's
// definition is applied, synced, after the vhost lock, its name reserved
// meanwhile; message edits hold the message (move.go), not the lock.
//
// Delivery is not the pipeline's work: completion only makes messages
// ready. When a consumer has credit, the queue's dispatcher (a goroutine
// living for one wake-up, queue.wakeLocked) hands the deliveries whose
// records are in the body cache to the channels' outlets, and leaves those
// it must read from the store to the queue's store reader (read.go), which
// reads them with the queue's lock released and delivers them in order; an ack, a requeue or a new consumer
// dispatches on its own channel's goroutine. A channel's Get, Cancel,
// queue declare, purge and delete first wait for the connection's earlier
// publishes to reach their queues (and Cancel for their dispatch), so a
// client that publishes and then gets sees its message, and what it
// published before a cancel goes to the consumers it was published to, as
// with RabbitMQ. They wait as well for the dead letters the connection's
// earlier settles started (a reject, a requeue past x-delivery-limit) to
// reach their targets, and a Get first runs the pending dispatch of the
// queues its channel consumes from: a client that rejects and then gets
// from the dead-letter queue finds the message there.
//
// Each queue keeps an ack floor, the lowest seq it still holds, and
// persists it with SetFloor as it advances. Next to each record of a
// durable queue the write pipeline writes a small index entry (package records:
// persistence, body size, publish time, TTL, priority). Open reads every
// durable queue's index entries from its floor, never the records, so a
// large backlog is serving again in about a second: persistent messages
// come back ready, those that had been delivered come back redelivered
// (their per-message state records a delivery count), transient ones are
// deleted.
//
// A message that leaves a queue for others — dead lettered, a delayed
// publish coming due, redriven by an operator — takes one path (move.go):
// its source holds it in one table (queue.held: out of the ready list, not
// unacked, the ack floor below it) while the write pipeline puts it in its
// targets and deletes it from the source in one batch.
//
// Durable exchanges, queues (with their arguments), bindings between durable
// ends, users and the queue-id mapping are metadata records (package records),
// synced before the declaring call returns. A new queue's name is reserved
// while its records are synced (vhost.creating), so a second declare of it
// waits and nobody sees the queue before it is durable; an exchange or a
// binding is visible a moment before it is durable, and whatever depends
// on it is written after it through the same pipeline.
//
// In a cluster (Config.Cluster), the store the broker writes through
// sends the shared metadata records (records.SharingOf) to the cluster's
// metadata group, so a declare returns once a majority has them; the
// definitions other nodes make reach this broker through MetaChanged,
// which reloads each changed key with the recovery code (metasync.go). A
// classic queue declared on another node is known here with its node
// (queue.home): routed to by forwarding, never written under its id.
// A get, consumer or purge of a queue this node does not serve (a quorum
// queue led elsewhere, another node's classic queue) goes to the node
// serving it through a session (remote*.go): there a Channel of its own,
// here the client's channel mapping its delivery tags; consumers move
// with a quorum queue's leader.
//
// Message TTL (x-message-ttl, the expiration property) is checked at the
// head of the queue: a message is expired once now >= its due time, when
// it would be delivered and when the expirer (expiry.go) wakes the queue at
// its head's due time, so it leaves promptly even when nobody consumes; the
// publish time is in the record, so TTLs survive a restart. x-max-length and x-max-length-bytes drop the head
// (drop-head) or refuse the publish (reject-publish: done gets an error,
// the publisher a basic.nack). Rejected and expired messages leave through
// queue.discardLocked, where dead lettering plugs in.
//
// # Goroutines
//
// The broker owns these goroutines, started by Open and stopped by Close:
// the write pipeline's two (Close waits for pending publishes and applies
// what is deferred), the queues' dispatcher wake-ups and store readers (Close waits for
// them after the pipeline), the housekeeping loop (housekeeping.go:
// expired messages, consumer timeouts, x-expires), the expirer (expiry.go:
// wakes queues whose head is due), the dead-letterer and the delay
// scheduler (stopped first; work they had not done stays in the store and
// resumes after a restart). Everything else runs on the callers'
// goroutines: a channel's methods on its connection's reader, deliveries
// on a queue's dispatcher or on the channel that acked, requeued or
// consumed.
//
// # Synchronization
//
// Broker, Connection and Channel are safe for concurrent use, except that
// one Channel's methods are meant to be called from one goroutine at a time
// (the connection's reader), as AMQP's per-channel ordering requires.
//
//   - Broker: the configuration is fixed after Open. Broker.vhMu guards
//     the vhost map (vhosts.go; a leaf, released before a vhost is
//     used); Broker.idMu guards queue-id allocation; replyRegistry.mu the
//     direct reply-to registry; userDB.mu the user table. Message
//     counters (stats.go) and userDB.permGen are atomics.
//   - vhost.mu (RWMutex) guards the topology: the exchange and queue maps,
//     every exchange's bindings and routing indexes, and each queue's list
//     of bindings that point at it. Routing holds it for reading.
//   - queue.mu guards the queue's message index (ready, unacked, delayed,
//     held by a move and being read by the store reader), its
//     consumers, round-robin cursor, ack floor, deleted flag and the due
//     time its expiry wake-up is armed for (expiry.go) and whether a
//     dispatcher or the store reader (read.go) is on its way. The reader
//     reads records from the store with it released; queue.readDone (a
//     sync.Cond on it) lets a purge or a leaving consumer wait for such a
//     read. Store writes of deliveries, acks, floors
//     and purges are deferred to the pipeline under it, so they are
//     ordered per queue. queue.nextSeq is owned by the pipeline's
//     goroutine alone (commit.go's prepare).
//   - Channel.mu guards the channel's delivery tags, unacked deliveries,
//     consumers, prefetch counters, flow, tx buffers, closed flag and its
//     sessions with other nodes. A remote consumer's mu (remote_follower.go)
//     is taken before Channel.mu, its seen after; remotes.mu after both.
//     Outlet.Deliver and Outlet.ConsumerCancelled are called with
//     Channel.mu held, so a channel's deliveries reach the outlet in
//     delivery-tag order.
//   - Connection.mu guards its channel map and exclusive queues;
//     Connection.pubMu its publish progress counters.
//   - The write pipeline (store.LocalPipeline) has two locks: mu, held
//     across every store apply and nothing else, and pendingMu, a leaf
//     guarding the deferred changes. Defer takes only pendingMu, so it may
//     be called under any broker lock; Apply, Sync and Flush (every read
//     through env.st but Get) take mu and may wait for an fsync, so they
//     are never called under vhost.mu, queue.mu or Channel.mu. Submit
//     blocks while the pipeline is behind and the pipeline's prepare takes
//     queue.mu (reject-publish limits), so Submit is never called under a
//     queue's lock either.
//   - bodyCache.mu, userDB.mu, Broker.idMu, replyRegistry.mu, goGroup.mu, the
//     committer's mutex, deadLetterer.mu, expirer.mu and scheduler.mu are
//     leaves (the scheduler reads the store's delay index under its mutex,
//     and it and the expirer call queues only after releasing theirs).
//   - Policies (policy.go): policyRegistry.writeMu serializes changes and
//     is taken before vhost.mu; policyRegistry.mu is a leaf, read under
//     vhost.mu by declares. A queue's effective options are an
//     atomic.Pointer swapped on a policy change, read without a lock.
//   - The operator views (admin*.go, for the HTTP API and the dead-letter
//     workflow, package dlq, which the broker never imports) take the same
//     locks in the same order and copy what they report.
//
// # Lock order
//
// Within the broker:
//
//	policyRegistry.writeMu → vhost.mu → queue.mu → Channel.mu → leaves (bodyCache.mu, replyRegistry.mu, limitsDB.mu, …)
//	vhost.mu → Connection.mu
//
// Across packages (the arrow is "may be taken while holding"):
//
//	amqpserver conn.mu, server.mu: released before calling the broker
//	broker Channel.mu → amqpserver outlet.mu → writer.mu (Outlet.Deliver)
//	pipeline completion (no lock) → queue.mu … ; done → amqpserver confirms.mu → writer.mu
//	any broker lock → store LocalPipeline.pendingMu (Defer; a leaf)
//	Broker.idMu → LocalPipeline.pendingMu (queue ids are deferred in id order)
//	no vhost.mu, queue.mu or Channel.mu → LocalPipeline.mu → pebblestore.applyMu → Pebble's own
//
// A method that holds Channel.mu and must touch a queue releases it first
// (acks collect their entries under Channel.mu, then settle them queue by
// queue). Deleting an auto-delete queue after its last consumer leaves
// re-enters from the top (vhost.mu, then queue.mu) and re-checks. Nothing
// holds a vhost's, queue's or channel's lock while waiting for the
// pipeline: TestNoLockHeldAcrossFsync (locks_test.go) watches every fsync
// of a run of declares, binds, publishes, purges, edits and deletes and
// fails when one of those locks stays held across it.
package broker
