package broker

// Queue arguments (x-args): their validation, their typed form, and the
// equivalence check of a redeclaration, worded as RabbitMQ words them.

import (
	"fmt"

	"github.com/sluicemq/sluice/internal/message"
)

// QueueOptions are a queue's known x-arguments, parsed. Integer options
// are -1 when absent.
type QueueOptions struct {
	MessageTTL              int64             // x-message-ttl, ms
	Expires                 int64             // x-expires, ms
	MaxLength               int64             // x-max-length, messages
	MaxLengthBytes          int64             // x-max-length-bytes
	Overflow                string            // x-overflow: drop-head (default), reject-publish, reject-publish-dlx
	DeadLetterExchange      string            // x-dead-letter-exchange
	HasDeadLetter           bool              // x-dead-letter-exchange was given
	DeadLetterRoutingKey    string            // x-dead-letter-routing-key
	HasDeadLetterRoutingKey bool              // x-dead-letter-routing-key was given
	MaxPriority             int64             // x-max-priority
	SingleActiveConsumer    bool              // x-single-active-consumer
	QueueType               string            // x-queue-type: classic (default) or quorum
	DeliveryLimit           int64             // x-delivery-limit
	QuorumInitialGroupSize  int64             // x-quorum-initial-group-size: a quorum queue's first members
	ConsumerTimeout         int64             // x-consumer-timeout, ms
	RetryBackoff            []int64           // x-retry-backoff, ms per return (the last repeats)
	RetryJitter             float64           // x-retry-jitter, 0..1
	Validation              ValidationOptions // x-schema, x-validation-failure, x-max-message-size (validate.go)

	// The policies that apply (policy.go): their names and the merged
	// definition; empty when none does.
	Policy, OperatorPolicy string
	PolicyDefinition       map[string]any
}

// defaultQueueOptions are the options of a queue declared without arguments.
func defaultQueueOptions() QueueOptions {
	o, _ := parseQueueArgs(nil, "", "")
	return o
}

// equivalenceArgs are the arguments a redeclaration must repeat unchanged.
var equivalenceArgs = []string{
	"x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key",
	"x-max-length", "x-max-length-bytes", "x-max-priority", "x-overflow", "x-queue-mode",
	"x-single-active-consumer", "x-queue-type", "x-delivery-limit", "x-retry-backoff", "x-retry-jitter",
	"x-schema", "x-validation-failure", "x-max-message-size",
}

// parseQueueArgs validates the known arguments; unknown ones are ignored.
func parseQueueArgs(args message.Table, queue, vhost string) (QueueOptions, error) {
	o := QueueOptions{MessageTTL: -1, Expires: -1, MaxLength: -1, MaxLengthBytes: -1, Overflow: "drop-head",
		MaxPriority: -1, QueueType: "classic", DeliveryLimit: -1, ConsumerTimeout: -1,
		QuorumInitialGroupSize: -1}
	bad := func(arg, why string) error {
		return errorf(PreconditionFailed, "invalid arg '%s' for queue '%s' in vhost '%s': %s", arg, queue, vhost, why)
	}
	if err := parseIntArgs(args, &o, bad); err != nil {
		return o, err
	}
	if err := parseRetryArgs(args, &o, bad); err != nil {
		return o, err
	}
	strs := []struct {
		name string
		dst  *string
		set  *bool
	}{
		{"x-dead-letter-exchange", &o.DeadLetterExchange, &o.HasDeadLetter},
		{"x-dead-letter-routing-key", &o.DeadLetterRoutingKey, &o.HasDeadLetterRoutingKey},
		{"x-overflow", &o.Overflow, nil},
		{"x-queue-type", &o.QueueType, nil},
	}
	for _, a := range strs {
		v, ok := args[a.name]
		if !ok {
			continue
		}
		s, ok := v.(string)
		if !ok {
			return o, bad(a.name, fmt.Sprintf("{unacceptable_type,%s}", typeName(v)))
		}
		*a.dst = s
		if a.set != nil {
			*a.set = true
		}
	}
	if err := CheckName("dead-letter exchange", o.DeadLetterExchange); err != nil { // names.go
		return o, bad("x-dead-letter-exchange", err.Error())
	}
	if err := CheckRoutingKey(o.DeadLetterRoutingKey); err != nil {
		return o, bad("x-dead-letter-routing-key", err.Error())
	}
	if _, ok := args["x-dead-letter-routing-key"]; ok && !o.HasDeadLetter {
		return o, bad("x-dead-letter-routing-key", "routing_key_but_no_dlx_defined")
	}
	switch o.Overflow {
	case "drop-head", "reject-publish", "reject-publish-dlx":
	default:
		return o, bad("x-overflow", fmt.Sprintf("{invalid_overflow,<<\"%s\">>}", o.Overflow))
	}
	switch o.QueueType {
	case "classic", "quorum":
	default:
		return o, bad("x-queue-type", fmt.Sprintf("{unsupported_queue_type,<<\"%s\">>}", o.QueueType))
	}
	if v, ok := args["x-single-active-consumer"]; ok {
		b, ok := v.(bool)
		if !ok {
			return o, bad("x-single-active-consumer", fmt.Sprintf("{unacceptable_type,%s}", typeName(v)))
		}
		o.SingleActiveConsumer = b
	}
	if err := parseValidationArgs(args, &o, bad); err != nil {
		return o, err
	}
	return o, nil
}

// parseIntArgs parses the integer arguments, which must be non-negative
// (and some positive, some bounded).
func parseIntArgs(args message.Table, o *QueueOptions, bad func(arg, why string) error) error {
	ints := []struct {
		name string
		dst  *int64
		zero bool // zero allowed
		max  int64
	}{
		{"x-message-ttl", &o.MessageTTL, true, 1<<32 - 1},
		{"x-expires", &o.Expires, false, 1<<32 - 1},
		{"x-max-length", &o.MaxLength, true, 0},
		{"x-max-length-bytes", &o.MaxLengthBytes, true, 0},
		{"x-max-priority", &o.MaxPriority, true, 255},
		{"x-delivery-limit", &o.DeliveryLimit, true, 0},
		{"x-consumer-timeout", &o.ConsumerTimeout, true, 0},
		{"x-quorum-initial-group-size", &o.QuorumInitialGroupSize, false, 0},
	}
	for _, a := range ints {
		v, ok := args[a.name]
		if !ok {
			continue
		}
		n, ok := intValue(v)
		switch {
		case !ok:
			return bad(a.name, fmt.Sprintf("{unacceptable_type,%s}", typeName(v)))
		case n < 0:
			return bad(a.name, fmt.Sprintf("{value_negative,%d}", n))
		case n == 0 && !a.zero:
			return bad(a.name, "{value_zero,0}")
		case a.max > 0 && n > a.max:
			return bad(a.name, fmt.Sprintf("{value_too_large,%d,%d}", n, a.max))
		}
		*a.dst = n
	}
	return nil
}

// argsEquivalent checks that a redeclaration repeats the named arguments:
// PreconditionFailed "inequivalent arg 'x-max-length' for queue 'q' in
// vhost '/': received the value '10' of type 'signedint' but current is
// none".
func argsEquivalent(kind, name, vhost string, names []string, got, cur message.Table) error {
	for _, arg := range names {
		g, gok := got[arg]
		c, cok := cur[arg]
		if arg == "x-queue-type" {
			g, gok = defaultQueueType(g, gok)
			c, cok = defaultQueueType(c, cok)
		}
		if gok == cok && (!gok || fieldEqual(g, c)) {
			continue
		}
		return errorf(PreconditionFailed, "inequivalent arg '%s' for %s '%s' in vhost '%s': received %s but current is %s",
			arg, kind, name, vhost, describeArg(g, gok), describeArg(c, cok))
	}
	return nil
}

func defaultQueueType(v any, ok bool) (any, bool) {
	if !ok {
		return "classic", true
	}
	return v, ok
}

func describeArg(v any, ok bool) string {
	if !ok {
		return "none"
	}
	s := fmt.Sprint(v)
	if b, isBytes := v.([]byte); isBytes {
		s = string(b)
	}
	return fmt.Sprintf("the value '%s' of type '%s'", s, typeName(v))
}

// enforceLimitsLocked applies x-max-length and x-max-length-bytes with
// drop-head overflow: the oldest ready messages are discarded. (The
// reject-publish modes are decided at publish time.)
func (q *queue) enforceLimitsLocked() {
	if q.opts().MaxLength < 0 && q.opts().MaxLengthBytes < 0 {
		return
	}
	if q.opts().Overflow != "drop-head" {
		return
	}
	var b batchHolder
	for q.ready.len() > 0 && q.overLimitLocked() {
		e, _ := q.ready.pop()
		q.discardLocked(b.get(), e, reasonMaxLen)
	}
	if b.b != nil {
		q.advanceFloorLocked(b.b)
		q.applyLocked(b.b)
	}
}

// priorityLevel is the ready level of a message with priority p: p
// clamped to x-max-priority, or 0 when the queue has no priorities.
func (q *queue) priorityLevel(p uint8) uint8 {
	if q.opts().MaxPriority <= 0 {
		return 0
	}
	return uint8(min(int64(p), q.opts().MaxPriority))
}

// rejectsPublish reports whether the queue refuses publishes when full.
func (q *queue) rejectsPublish() bool {
	return q.opts().Overflow != "drop-head" && (q.opts().MaxLength >= 0 || q.opts().MaxLengthBytes >= 0)
}

// full reports whether one more message of size bytes would exceed the
// limits, with pending messages already on their way.
func (q *queue) full(pending int, size uint32) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := int64(q.ready.len() + pending)
	return (q.opts().MaxLength >= 0 && n >= q.opts().MaxLength) ||
		(q.opts().MaxLengthBytes >= 0 && int64(q.ready.bytes)+int64(size) > q.opts().MaxLengthBytes)
}

func (q *queue) overLimitLocked() bool {
	return (q.opts().MaxLength >= 0 && int64(q.ready.len()) > q.opts().MaxLength) ||
		(q.opts().MaxLengthBytes >= 0 && int64(q.ready.bytes) > q.opts().MaxLengthBytes)
}
