// Package access is identity and access for both front doors: how
// passwords are hashed and checked (password.go), which resources a user
// may configure, write and read in a vhost (permission.go, with one
// Checker per connection or request that AMQP and HTTP both use), and
// what happens when logins fail: a per-source throttle with a growing
// delay, aggregated log lines and counters (throttle.go, failures.go);
// and the audit log of who did what (audit.go), which both front doors
// and the dead-letter workflow write.
//
// The user table and its records stay with the broker, which stores
// them, and the audit log's records are kept through the AuditStore the
// broker implements; access holds the rules and knows nothing of the
// store, the broker or the protocols. Every type here is safe for concurrent use; nothing
// starts a goroutine.
package access
