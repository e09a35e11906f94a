package broker

// Validation at the door: x-schema (JSON Schema) on queues and exchanges,
// x-validation-failure, and the per-queue x-max-message-size. A publish is
// checked once, after routing and before anything is stored: the
// exchange's schema first, then each target queue's size limit and schema.
// The body is parsed at most once per publish and each distinct compiled
// schema checks it at most once, however many queues share it.
//
// A refused message (reject mode, or a size limit) is stored nowhere: on a
// channel in confirm mode the publisher gets basic.nack, otherwise the
// publish is a channel error (PreconditionFailed). In dead-letter mode the
// queue's copy goes to its dead-letter exchange instead (reason invalid,
// header x-validation-error) and the other queues get the message as
// usual; the confirm is an ack once everything is stored.

import (
	"fmt"
	"strings"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/schema"
)

// Values of x-validation-failure.
const (
	failReject     = "reject"
	failDeadLetter = "dead-letter"
)

// ValidationOptions are the validation arguments of a queue.
type ValidationOptions struct {
	Schema         string // x-schema: a registered schema's name, "" for none
	DeadLetter     bool   // x-validation-failure is dead-letter (default reject)
	MaxMessageSize int64  // x-max-message-size, bytes of body; -1 for none
}

func (o ValidationOptions) active() bool { return o.Schema != "" || o.MaxMessageSize >= 0 }

// ValidationError is why a message was refused at the door: it does not
// match a schema, or it is larger than a queue takes. It is the Err of an
// *Error with Code PreconditionFailed, whose Reason is what an AMQP client
// reads in the reply text.
type ValidationError struct {
	Schema string // the schema's name; "" for a size limit
	Target string // what refused it: "queue 'orders'" or "exchange 'in'"
	Errors []schema.Error
}

func (e *ValidationError) Error() string {
	first := ""
	if len(e.Errors) > 0 {
		first = e.Errors[0].String()
	}
	if e.Schema == "" {
		return first
	}
	return fmt.Sprintf("message does not match schema '%s': %s", e.Schema, first)
}

func (e *ValidationError) asError() *Error {
	return &Error{Code: PreconditionFailed, Reason: e.Error(), Err: e}
}

// parseValidationArgs parses x-schema, x-validation-failure and
// x-max-message-size of a queue whose other options are in o.
func parseValidationArgs(args message.Table, o *QueueOptions, bad func(arg, why string) error) error {
	v := ValidationOptions{MaxMessageSize: -1}
	if a, ok := args["x-schema"]; ok {
		s, ok := a.(string)
		if !ok {
			return bad("x-schema", fmt.Sprintf("{unacceptable_type,%s}", typeName(a)))
		}
		if err := validSchemaName(s); err != nil {
			return bad("x-schema", err.Error())
		}
		v.Schema = s
	}
	mode, err := validationFailureArg(args, bad)
	if err != nil {
		return err
	}
	if mode == failDeadLetter {
		if !o.HasDeadLetter {
			return bad("x-validation-failure", "dead-letter needs x-dead-letter-exchange")
		}
		v.DeadLetter = true
	}
	if a, ok := args["x-max-message-size"]; ok {
		n, ok := intValue(a)
		switch {
		case !ok:
			return bad("x-max-message-size", fmt.Sprintf("{unacceptable_type,%s}", typeName(a)))
		case n <= 0:
			return bad("x-max-message-size", fmt.Sprintf("{value_not_positive,%d}", n))
		}
		v.MaxMessageSize = n
	}
	o.Validation = v
	return nil
}

func validationFailureArg(args message.Table, bad func(arg, why string) error) (string, error) {
	a, ok := args["x-validation-failure"]
	if !ok {
		return failReject, nil
	}
	s, ok := a.(string)
	if !ok {
		return "", bad("x-validation-failure", fmt.Sprintf("{unacceptable_type,%s}", typeName(a)))
	}
	if s != failReject && s != failDeadLetter {
		return "", bad("x-validation-failure", fmt.Sprintf("{invalid_validation_failure,<<\"%s\">>}, want reject or dead-letter", s))
	}
	return s, nil
}

// checkQueueSchemaLocked refuses a new queue whose x-schema names no
// registered schema. Called with vh.mu held, so a schema cannot be deleted
// between the check and the queue's creation.
func (vh *vhost) checkQueueSchemaLocked(name string, o QueueOptions) error {
	if o.Validation.Schema == "" || vh.env.schemas.exists(vh.name, o.Validation.Schema) {
		return nil
	}
	return errorf(PreconditionFailed, "invalid arg 'x-schema' for queue '%s' in vhost '%s': no schema '%s' is registered",
		name, vh.name, o.Validation.Schema)
}

// checkExchangeArgsLocked checks a new exchange's validation arguments:
// x-schema must name a registered schema; x-validation-failure may only be
// reject (an exchange has no dead-letter exchange). Called with vh.mu held.
func (vh *vhost) checkExchangeArgsLocked(d ExchangeDecl) error {
	bad := func(arg, why string) error {
		return errorf(PreconditionFailed, "invalid arg '%s' for exchange '%s' in vhost '%s': %s", arg, d.Name, vh.name, why)
	}
	if a, ok := d.Args["x-schema"]; ok {
		s, ok := a.(string)
		if !ok {
			return bad("x-schema", fmt.Sprintf("{unacceptable_type,%s}", typeName(a)))
		}
		if !vh.env.schemas.exists(vh.name, s) {
			return bad("x-schema", fmt.Sprintf("no schema '%s' is registered", s))
		}
	}
	mode, err := validationFailureArg(d.Args, bad)
	if err != nil {
		return err
	}
	if mode == failDeadLetter {
		return bad("x-validation-failure", "an exchange has no dead-letter exchange; put x-schema and dead-letter on the queue")
	}
	return nil
}

// exchangeSchema returns the x-schema of the named exchange, "" for none.
func (vh *vhost) exchangeSchema(name string) string {
	vh.mu.RLock()
	defer vh.mu.RUnlock()
	if x := vh.exchanges[name]; x != nil {
		return x.schemaLocked()
	}
	return ""
}

// schemaLocked returns the exchange's x-schema, its own or its policy's
// (policy.go), "" for none; called with its vhost's lock held.
func (x *exchange) schemaLocked() string {
	if s, ok := x.args["x-schema"].(string); ok {
		return s
	}
	return x.policySchema
}

// checker checks one message against schemas, parsing its body at most
// once and running each compiled schema at most once.
type checker struct {
	reg     *schemaRegistry
	vhost   string
	msg     *message.Message
	doc     *schema.Doc
	results map[*schema.Schema][]schema.Error
}

// check returns why msg does not match the named schema, nil if it does.
func (c *checker) check(name, target string) *ValidationError {
	fail := func(errs []schema.Error) *ValidationError {
		return &ValidationError{Schema: name, Target: target, Errors: errs}
	}
	rs := c.reg.lookup(c.vhost, name)
	switch {
	case rs == nil:
		return fail([]schema.Error{{Message: fmt.Sprintf("schema '%s' is not registered in vhost '%s'", name, c.vhost)}})
	case rs.compiled == nil:
		return fail([]schema.Error{{Message: fmt.Sprintf("schema '%s' does not compile", name)}})
	}
	p := &c.msg.Properties
	if ct := p.ContentType; p.Flags&message.FlagContentType != 0 && !schema.IsJSON(ct) {
		return fail([]schema.Error{{Message: fmt.Sprintf("content type '%s' is not JSON", ct)}})
	}
	if p.Flags&message.FlagContentEncoding != 0 && !identityEncoding(p.ContentEncoding) {
		return fail([]schema.Error{{Message: fmt.Sprintf("content encoding '%s' cannot be validated", p.ContentEncoding)}})
	}
	errs, done := c.results[rs.compiled]
	if !done {
		if c.doc == nil {
			c.doc = schema.Parse(c.msg.Body)
		}
		errs = rs.compiled.Check(c.doc)
		if c.results == nil {
			c.results = make(map[*schema.Schema][]schema.Error, 2)
		}
		c.results[rs.compiled] = errs
	}
	if errs == nil {
		return nil
	}
	return fail(errs)
}

// identityEncoding reports whether a content encoding leaves the body as
// it is (a charset name is a common misuse of the property; it is fine).
func identityEncoding(enc string) bool {
	switch strings.ToLower(strings.TrimSpace(enc)) {
	case "", "identity", "utf-8", "utf8":
		return true
	}
	return false
}

// invalidCopy is a target queue that turned the message away in
// dead-letter mode.
type invalidCopy struct {
	q   *queue
	err *ValidationError
}

// admit checks a routed publish against the exchange's schema and its
// target queues' limits and schemas. When handled is false the publish
// goes on with *targets and *done (dead-lettered queues removed, done
// joined with their dead letters). When handled is true the publish ends
// with routed and err: refused (a channel error, or a nack already given
// to done in confirm mode), or all its copies dead-lettered.
// xs is the exchange's schema as route found it.
func (ch *Channel) admit(msg *message.Message, xs string, targets *[]*queue, done *func(error)) (handled, routed bool, err error) {
	return ch.admitWith(msg, xs, targets, done, true)
}

// admitWith is admit; deadLetter false refuses what dead-letter mode
// would dead-letter.
func (ch *Channel) admitWith(msg *message.Message, xs string, targets *[]*queue, done *func(error), deadLetter bool) (handled, routed bool, err error) {
	active := xs != ""
	for _, q := range *targets {
		active = active || q.opts().Validation.active()
	}
	if !active {
		return false, false, nil
	}
	c := checker{reg: ch.env.schemas, vhost: ch.vh.name, msg: msg}
	if xs != "" {
		if verr := c.check(xs, "exchange '"+msg.Exchange+"'"); verr != nil {
			return ch.refuse(verr, *done)
		}
	}
	var invalid []invalidCopy
	for _, q := range *targets {
		o := q.opts().Validation
		if verr := sizeRefusal(q, msg); verr != nil {
			return ch.refuse(verr, *done)
		}
		if o.Schema == "" {
			continue
		}
		verr := c.check(o.Schema, "queue '"+q.name+"'")
		switch {
		case verr == nil:
		case o.DeadLetter && deadLetter:
			invalid = append(invalid, invalidCopy{q: q, err: verr})
		default:
			return ch.refuse(verr, *done)
		}
	}
	if len(invalid) == 0 {
		return false, false, nil
	}
	return ch.deadLetterInvalid(msg, targets, done, invalid)
}

// sizeRefusal returns why msg is larger than q takes (x-max-message-size),
// nil when it is not.
func sizeRefusal(q *queue, msg *message.Message) *ValidationError {
	limit := q.opts().Validation.MaxMessageSize
	if limit < 0 || int64(len(msg.Body)) <= limit {
		return nil
	}
	return &ValidationError{Target: "queue '" + q.name + "'", Errors: []schema.Error{{Message: fmt.Sprintf(
		"message size %d is larger than max size %d of queue '%s' in vhost '%s'",
		len(msg.Body), limit, q.name, q.vh.name)}}}
}

// checkMove checks a message an operator puts into targets (a redrive,
// routed through exchange when it is not ""; an edit in place) against
// what they take: the exchange's schema, each queue's size limit and
// schema. Unlike a publish, dead-letter mode does not apply: a refused
// move leaves the message where it was. The error is an *Error with a
// *ValidationError inside (the HTTP API's 422).
func (vh *vhost) checkMove(msg *message.Message, exchange string, targets []*queue) error {
	c := checker{reg: vh.env.schemas, vhost: vh.name, msg: msg}
	if xs := vh.exchangeSchema(exchange); exchange != "" && xs != "" {
		if verr := c.check(xs, "exchange '"+exchange+"'"); verr != nil {
			return verr.asError()
		}
	}
	for _, q := range targets {
		if verr := sizeRefusal(q, msg); verr != nil {
			return verr.asError()
		}
		if s := q.opts().Validation.Schema; s != "" {
			if verr := c.check(s, "queue '"+q.name+"'"); verr != nil {
				return verr.asError()
			}
		}
	}
	return nil
}

// admitDelayed checks a delayed publish (x-delay) at once, against the
// exchange's schema and the queues it routes to now, so its publisher
// hears of an invalid message when it publishes, not when it is due. A
// delayed message is never dead-lettered at the door: any failure refuses
// it, whatever x-validation-failure says. Routing happens again when it is
// due, without a second check. An unknown or internal exchange refuses
// it, as it would a publish without a delay.
func (ch *Channel) admitDelayed(msg *message.Message, done func(error)) (handled, routed bool, err error) {
	targets, xs, err := ch.vh.route(msg)
	if err != nil {
		return true, false, err
	}
	return ch.admitWith(msg, xs, &targets, &done, false)
}

// refuse ends a publish that failed validation: in confirm mode the
// publisher gets basic.nack (done's error) and the channel stays open;
// otherwise the error closes the channel.
func (ch *Channel) refuse(verr *ValidationError, done func(error)) (handled, routed bool, err error) {
	ch.mu.Lock()
	confirm := ch.mode == modeConfirm
	ch.mu.Unlock()
	if confirm {
		done(verr.asError())
		return true, true, nil
	}
	return true, false, verr.asError()
}
