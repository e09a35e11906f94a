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
// store, not in RAM.
//
// Publishes go through one commit loop goroutine (commit.go). It assigns
// each routed message its seq in every target queue, writes the records of
// many publishers as one Batch, applies it once — synced when any message
// in the group is persistent and routed to a durable queue (group commit)
// — then adds the entries to the queues' indexes and calls each publisher's
// done. Transient messages take the same path unsynced. Non-durable queues
// keep their messages in the store too (unsynced); their leftovers are
// dropped by the next Open. Because a message enters a queue's index only
// after the commit loop has applied its record, deliveries, acks and state
// changes always follow the record's write. A queue does not apply those
// changes itself: it queues them, under its lock, to the write-behind
// (writeback.go), whose flusher applies them unsynced, in order, many
// settles per batch; a synced write carries everything queued before it.
// A channel's Get, Cancel, queue declare, purge and delete first
// wait for the connection's earlier publishes to reach their queues, so a
// client that publishes and then gets sees its message, and what it
// published before a cancel goes to the consumers it was published to, as
// with RabbitMQ.
//
// Each queue keeps an ack floor, the lowest seq it still holds, and
// persists it with SetFloor as it advances. Next to each record of a
// durable queue the commit loop writes a small index entry (records.go:
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
// unacked, the ack floor below it) while the commit loop puts it in its
// targets and deletes it from the source in one batch.
//
// Durable exchanges, queues (with their arguments), bindings between durable
// ends, users and the queue-id mapping are metadata records (records.go),
// written with a synced Apply before the declaring call returns.
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
// The broker owns six goroutines, started by Open and stopped by Close:
// the commit loop (Close waits for pending commits), the write-behind's
// flusher (stopped after the commit loop, with a last flush), the housekeeping
// loop (housekeeping.go: expired messages, consumer timeouts, x-expires),
// the expirer (expiry.go: wakes queues whose head is due), the
// dead-letterer and the delay scheduler (stopped first; work they had
// not done stays in the store and resumes after a restart). Everything else runs
// on the callers' goroutines: a channel's methods on its connection's
// reader, deliveries on whichever goroutine made a message available (the
// commit loop, or a channel that acked, requeued or consumed).
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
//   - queue.mu guards the queue's message index (ready, unacked, delayed
//     and held by a move), its
//     consumers, round-robin cursor, ack floor, deleted flag and the due
//     time its expiry wake-up is armed for (expiry.go). Store
//     writes of deliveries, acks and floors are queued to the write-behind
//     under it, so they are ordered per queue; purges are applied under it,
//     synced. queue.nextSeq is owned by the commit loop alone.
//   - Channel.mu guards the channel's delivery tags, unacked deliveries,
//     consumers, prefetch counters, flow, tx buffers and closed flag.
//     Outlet.Deliver and Outlet.ConsumerCancelled are called with
//     Channel.mu held, so a channel's deliveries reach the outlet in
//     delivery-tag order.
//   - Connection.mu guards its channel map and exclusive queues;
//     Connection.pubMu its publish progress counters.
//   - writeBehind.applyMu is held across a store apply and takes only
//     writeBehind.mu, a leaf; nothing else is locked under either.
//   - bodyCache.mu, userDB.mu, Broker.idMu, replyRegistry.mu, the
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
//	vhost.mu → queue.mu → Channel.mu → leaves (bodyCache.mu, replyRegistry.mu, limitsDB.mu, …)
//	vhost.mu → Connection.mu
//
// A method that holds Channel.mu and must touch a queue releases it first
// (acks collect their entries under Channel.mu, then settle them queue by
// queue). Deleting an auto-delete queue after its last consumer leaves
// re-enters from the top (vhost.mu, then queue.mu) and re-checks. Nothing
// holds a lock while waiting for the commit loop.
package broker
