package broker

// Policies and operator policies, as RabbitMQ 3.10 has them: named per
// vhost, a regular expression over queue (or exchange) names, apply-to,
// a priority and a definition of settings. The highest-priority matching
// policy of each kind applies to a queue. Its effective options are its
// declared arguments merged with the definitions (effectiveOptions),
// recomputed for every queue of the vhost when a policy changes, so a
// change reaches existing queues at once: dead lettering, limits, TTL of
// newly enqueued messages, delivery limit, retry settings.
//
// How a setting combines with an argument given at declare follows
// RabbitMQ's classic queue (rabbit_amqqueue_process) and quorum queue
// (delivery-limit): for the numeric limits (message-ttl, expires,
// max-length, max-length-bytes, delivery-limit, and Sluice's
// consumer-timeout) the smaller value wins; for the others (dead-letter-
// exchange, dead-letter-routing-key, overflow, Sluice's retry-backoff,
// retry-jitter, schema, validation-failure) the argument wins. An operator
// policy may set only numeric limits, and the smaller of it and the user
// policy applies. As in RabbitMQ 3.10, max-priority is not a policy
// setting and is refused.
//
// Policies are durable metadata records (pol/<u|o><vhost>\0<name>: a
// version byte and the Policy's JSON, records.EncodePolicy), recovered by
// Open before the queues.
//
// Lock order: policyRegistry.writeMu → vhost.mu → policyRegistry.mu →
// queue.mu. Declares read the registry under vhost.mu.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/records"
	"github.com/sluicemq/sluice/internal/store"
)

func policyKey(operator bool, vhost, name string) string {
	kind := "u"
	if operator {
		kind = "o"
	}
	return records.MetaPolicy + kind + vhost + "\x00" + name
}

// Policy is a policy or an operator policy.
type Policy struct {
	VHost    string `json:"vhost"`
	Name     string `json:"name"`
	Pattern  string `json:"pattern"`
	ApplyTo  string `json:"apply-to"` // queues, exchanges or all
	Priority int    `json:"priority"`
	// Definition holds the settings; values are strings, int64, float64,
	// bools or lists of them.
	Definition map[string]any `json:"definition"`
	Operator   bool           `json:"operator,omitempty"`
}

// policySetting is how one definition key maps onto queue arguments.
type policySetting struct {
	arg      string // the x-argument it stands for ("" : accepted, no effect)
	min      bool   // numeric: the smaller of policy and argument wins
	operator bool   // operator policies may set it
}

var policySettings = map[string]policySetting{
	"dead-letter-exchange":    {arg: "x-dead-letter-exchange"},
	"dead-letter-routing-key": {arg: "x-dead-letter-routing-key"},
	"message-ttl":             {arg: "x-message-ttl", min: true, operator: true},
	"expires":                 {arg: "x-expires", min: true, operator: true},
	"max-length":              {arg: "x-max-length", min: true, operator: true},
	"max-length-bytes":        {arg: "x-max-length-bytes", min: true, operator: true},
	"delivery-limit":          {arg: "x-delivery-limit", min: true, operator: true},
	"overflow":                {arg: "x-overflow"},
	"queue-mode":              {}, // lazy or default: Sluice's queues always keep their backlog on disk
	"max-in-memory-length":    {operator: true},
	"max-in-memory-bytes":     {operator: true},
	"consumer-timeout":        {arg: "x-consumer-timeout", min: true, operator: true},
	"retry-backoff":           {arg: "x-retry-backoff"},
	"retry-jitter":            {arg: "x-retry-jitter"},
	"schema":                  {arg: "x-schema"},
	"validation-failure":      {arg: "x-validation-failure"},
	// For exchanges (applyExchangePolicyLocked); the argument wins.
	"alternate-exchange": {},
	// Accepted so that RabbitMQ definitions import; they have no effect
	// (no classic mirroring, federation or leader placement in Sluice).
	"ha-mode": {}, "ha-params": {}, "ha-sync-mode": {}, "ha-sync-batch-size": {},
	"ha-promote-on-shutdown": {}, "ha-promote-on-failure": {}, "queue-master-locator": {},
	"queue-leader-locator": {}, "federation-upstream": {}, "federation-upstream-set": {},
}

type compiledPolicy struct {
	Policy
	re *regexp.Regexp
}

// policyRegistry holds every vhost's policies of both kinds.
type policyRegistry struct {
	st store.Store
	// writeMu serializes puts and deletes (store, map and re-application
	// in the same order).
	writeMu sync.Mutex

	mu       sync.RWMutex
	policies map[string]map[string]*compiledPolicy // vhost → key (u/o + name)
}

func mapKey(operator bool, name string) string {
	if operator {
		return "o" + name
	}
	return "u" + name
}

func (b *Broker) openPolicies() error {
	r := &policyRegistry{st: b.env.st, policies: make(map[string]map[string]*compiledPolicy)}
	err := scanDefs(b.env.st, records.MetaPolicy, decodePolicy, func(p Policy) {
		cp, err := compilePolicy(p)
		if err != nil {
			b.env.log.Warn("recover policy: ignoring it", "vhost", p.VHost, "policy", p.Name, "err", err)
			return
		}
		r.putLocked(cp)
	})
	if err != nil {
		return err
	}
	b.env.policies = r
	return nil
}

func decodePolicy(v []byte) (Policy, error) {
	var p Policy
	doc, _, err := records.DecodePolicy(v)
	if err != nil {
		return p, err
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if err := dec.Decode(&p); err != nil {
		return p, records.Corruptf("policy: %v", err)
	}
	p.Definition = normalizeDefinition(p.Definition)
	return p, nil
}

func (r *policyRegistry) putLocked(cp *compiledPolicy) {
	m := r.policies[cp.VHost]
	if m == nil {
		m = make(map[string]*compiledPolicy)
		r.policies[cp.VHost] = m
	}
	m[mapKey(cp.Operator, cp.Name)] = cp
}

// normalizeDefinition turns JSON numbers into int64 (or float64) values.
func normalizeDefinition(def map[string]any) map[string]any {
	out := make(map[string]any, len(def))
	for k, v := range def {
		out[k] = normalizeValue(v)
	}
	return out
}

func normalizeValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x)
		}
		return x
	case int:
		return int64(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalizeValue(e)
		}
		return out
	}
	return v
}

// compilePolicy validates p as RabbitMQ does: InvalidArgument "Validation
// failed" with the reason.
func compilePolicy(p Policy) (*compiledPolicy, error) {
	bad := func(format string, args ...any) error {
		return errorf(InvalidArgument, "Validation failed: "+format, args...)
	}
	if err := validPolicyName(p.Name); err != nil {
		return nil, err
	}
	switch p.ApplyTo {
	case "":
		p.ApplyTo = "all"
	case "queues", "exchanges", "all":
	default:
		return nil, bad("apply-to '%s' unrecognised; should be 'queues', 'exchanges' or 'all'", p.ApplyTo)
	}
	re, err := regexp.Compile(p.Pattern)
	if err != nil {
		return nil, bad("pattern '%s' is not a regular expression: %v", p.Pattern, err)
	}
	if len(p.Definition) == 0 {
		return nil, bad("no policy provided")
	}
	p.Definition = normalizeDefinition(p.Definition)
	var unknown []string
	for k, v := range p.Definition {
		s, ok := policySettings[k]
		if !ok || (p.Operator && !s.operator) {
			unknown = append(unknown, k)
			continue
		}
		if k == "alternate-exchange" {
			ae, ok := v.(string)
			if !ok {
				return nil, bad("alternate-exchange: want the name of an exchange, got %v", v)
			}
			if err := CheckName("alternate exchange", ae); err != nil { // names.go
				return nil, bad("alternate-exchange: %v", err)
			}
		}
		if s.arg == "" {
			continue
		}
		args := message.Table{s.arg: v}
		if k == "dead-letter-routing-key" {
			args["x-dead-letter-exchange"] = ""
		}
		if _, err := parseQueueArgs(args, p.Name, p.VHost); err != nil {
			return nil, bad("%s: %s", k, strings.TrimPrefix(reasonOf(err), "invalid arg '"+s.arg+"' for queue '"+p.Name+"' in vhost '"+p.VHost+"': "))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, bad("%s are not recognised policy settings", strings.Join(unknown, ", "))
	}
	return &compiledPolicy{Policy: p, re: re}, nil
}

func reasonOf(err error) string {
	if e, ok := err.(*Error); ok {
		return e.Reason
	}
	return err.Error()
}

func validPolicyName(name string) error {
	switch {
	case name == "":
		return errorf(InvalidArgument, "policy name is empty")
	}
	return CheckName("policy", name) // names.go
}

// matchLocked returns the highest-priority policy of the kind that
// applies to a queue (or exchange) name, nil if none; equal priorities go
// to the first name in order.
func (r *policyRegistry) matchLocked(vhost, name string, operator, exchange bool) *compiledPolicy {
	var best *compiledPolicy
	for _, cp := range r.policies[vhost] {
		if cp.Operator != operator || !cp.re.MatchString(name) {
			continue
		}
		if cp.ApplyTo != "all" && (cp.ApplyTo == "exchanges") != exchange {
			continue
		}
		if best == nil || cp.Priority > best.Priority || (cp.Priority == best.Priority && cp.Name < best.Name) {
			best = cp
		}
	}
	return best
}

// effectiveOptions are the options of queue with its declared args
// (parsed: declared) under the matching policies.
func (r *policyRegistry) effectiveOptions(vhost, queue string, args message.Table, declared QueueOptions) QueueOptions {
	if r == nil {
		return declared
	}
	r.mu.RLock()
	user := r.matchLocked(vhost, queue, false, false)
	op := r.matchLocked(vhost, queue, true, false)
	r.mu.RUnlock()
	if user == nil && op == nil {
		return declared
	}
	def := map[string]any{}
	if user != nil {
		copyDefinition(def, user.Definition)
	}
	if op != nil {
		for k, v := range op.Definition {
			if cur, ok := def[k]; ok && policySettings[k].min {
				def[k] = minValue(cur, v)
				continue
			}
			def[k] = v
		}
	}
	merged := make(message.Table, len(args)+len(def))
	copyDefinition(merged, args)
	for k, v := range def {
		s := policySettings[k]
		if s.arg == "" {
			continue
		}
		if cur, ok := args[s.arg]; ok {
			if s.min {
				merged[s.arg] = minValue(cur, v)
			}
			continue // the argument wins
		}
		merged[s.arg] = v
	}
	o, err := parseQueueArgs(merged, queue, vhost)
	if err != nil {
		// Each setting was valid alone; together with the arguments they
		// may not be (a routing key without an exchange): keep the
		// declared options.
		o = declared
	}
	if user != nil {
		o.Policy = user.Name
	}
	if op != nil {
		o.OperatorPolicy = op.Name
	}
	o.PolicyDefinition = def
	return o
}

func copyDefinition[M ~map[string]any](dst, src M) {
	for k, v := range src {
		dst[k] = v
	}
}

// minValue is the smaller of two integer values (b when either is not one).
func minValue(a, b any) any {
	x, aok := intValue(a)
	y, bok := intValue(b)
	if !aok || !bok {
		return b
	}
	if x < y {
		return a
	}
	return b
}

// Policies lists the policies (operator: the operator policies) of a
// vhost ("" for all), by vhost and name.
func (b *Broker) Policies(vhostName string, operator bool) ([]Policy, error) {
	if vhostName != "" && b.vhost(vhostName) == nil {
		return nil, errorf(NotFound, "no vhost '%s'", vhostName)
	}
	r := b.env.policies
	r.mu.RLock()
	var out []Policy
	for vh, m := range r.policies {
		if vhostName != "" && vh != vhostName {
			continue
		}
		for _, cp := range m {
			if cp.Operator == operator {
				out = append(out, cp.Policy)
			}
		}
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b Policy) int {
		return cmpStrings(a.VHost+"\x00"+a.Name, b.VHost+"\x00"+b.Name)
	})
	return out, nil
}

func cmpStrings(a, b string) int { return strings.Compare(a, b) }

// GetPolicy returns one policy (operator: operator policy).
func (b *Broker) GetPolicy(vhostName, name string, operator bool) (Policy, error) {
	r := b.env.policies
	r.mu.RLock()
	cp := r.policies[vhostName][mapKey(operator, name)]
	r.mu.RUnlock()
	if cp == nil {
		return Policy{}, errorf(NotFound, "no %s '%s' in vhost '%s'", policyNoun(operator), name, vhostName)
	}
	return cp.Policy, nil
}

func policyNoun(operator bool) string {
	if operator {
		return "operator policy"
	}
	return "policy"
}

// PutPolicy sets (or replaces) a policy and applies it to the vhost's
// queues at once. It reports whether the policy is new.
func (b *Broker) PutPolicy(p Policy) (created bool, err error) {
	vh := b.vhost(p.VHost)
	if vh == nil {
		return false, errorf(NotFound, "no vhost '%s'", p.VHost)
	}
	cp, err := compilePolicy(p)
	if err != nil {
		return false, err
	}
	if name, ok := cp.Definition["schema"].(string); ok && !b.env.schemas.exists(p.VHost, name) {
		return false, errorf(InvalidArgument, "Validation failed: schema: no schema '%s' in vhost '%s'", name, p.VHost)
	}
	v, err := json.Marshal(cp.Policy)
	if err != nil {
		return false, internalError("encode policy", err)
	}
	r := b.env.policies
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	if b.vhost(p.VHost) != vh { // deleted meanwhile: its policies are being forgotten
		return false, errorf(NotFound, "no vhost '%s'", p.VHost)
	}
	var batch store.Batch
	batch.PutMeta(policyKey(p.Operator, p.VHost, p.Name), records.EncodePolicy(v))
	if err := b.env.st.Apply(&batch, true); err != nil {
		return false, internalError("store policy", err)
	}
	r.mu.Lock()
	_, existed := r.policies[p.VHost][mapKey(p.Operator, p.Name)]
	r.putLocked(cp)
	r.mu.Unlock()
	vh.reapplyPolicies()
	return !existed, nil
}

// DeletePolicy removes a policy; the vhost's queues fall back at once to
// their arguments (or the next matching policy).
func (b *Broker) DeletePolicy(vhostName, name string, operator bool) error {
	vh := b.vhost(vhostName)
	if vh == nil {
		return errorf(NotFound, "no vhost '%s'", vhostName)
	}
	r := b.env.policies
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	r.mu.RLock()
	_, ok := r.policies[vhostName][mapKey(operator, name)]
	r.mu.RUnlock()
	if !ok {
		return errorf(NotFound, "no %s '%s' in vhost '%s'", policyNoun(operator), name, vhostName)
	}
	var batch store.Batch
	batch.DeleteMeta(policyKey(operator, vhostName, name))
	if err := b.env.st.Apply(&batch, true); err != nil {
		return internalError("delete policy", err)
	}
	r.mu.Lock()
	delete(r.policies[vhostName], mapKey(operator, name))
	r.mu.Unlock()
	vh.reapplyPolicies()
	return nil
}

// forgetVHostPolicies drops the policies of a deleted vhost.
func (r *policyRegistry) forgetVHost(vhostName string) error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	var batch store.Batch
	r.mu.Lock()
	for _, cp := range r.policies[vhostName] {
		batch.DeleteMeta(policyKey(cp.Operator, cp.VHost, cp.Name))
	}
	delete(r.policies, vhostName)
	r.mu.Unlock()
	if err := r.st.Apply(&batch, true); err != nil {
		return fmt.Errorf("delete policies of vhost '%s': %w", vhostName, err)
	}
	return nil
}

// applyExchangePolicyLocked gives x the alternate exchange and schema of
// the policy that applies to it, where its arguments set none (the
// argument wins, as RabbitMQ's alternate-exchange). vh.mu is held for
// writing (or Open runs alone).
func (vh *vhost) applyExchangePolicyLocked(x *exchange) {
	x.policy, x.policySchema = "", ""
	x.alternate, _ = x.args["alternate-exchange"].(string)
	r := vh.env.policies
	if r == nil || x.name == "" {
		return
	}
	r.mu.RLock()
	p := r.matchLocked(vh.name, x.name, false, true)
	r.mu.RUnlock()
	if p == nil {
		return
	}
	x.policy = p.Name
	if _, ok := x.args["alternate-exchange"]; !ok {
		x.alternate, _ = p.Definition["alternate-exchange"].(string)
	}
	x.policySchema, _ = p.Definition["schema"].(string)
}

// applyExchangePolicies applies the policies to every exchange of vh
// (the predeclared ones too).
func (vh *vhost) applyExchangePolicies() {
	vh.mu.Lock()
	defer vh.mu.Unlock()
	for _, x := range vh.exchanges {
		vh.applyExchangePolicyLocked(x)
	}
}

// reapplyPolicies recomputes the options of every queue of the vhost and
// lets each act on them at once (limits, expiry, deliveries), and the
// exchanges' alternate exchanges and schemas.
func (vh *vhost) reapplyPolicies() {
	vh.applyExchangePolicies()
	vh.mu.RLock()
	qs := make([]*queue, 0, len(vh.queues))
	for _, q := range vh.queues {
		declared, err := parseQueueArgs(q.args, q.name, vh.name)
		if err != nil {
			continue
		}
		q.setOpts(vh.env.policies.effectiveOptions(vh.name, q.name, q.args, declared))
		qs = append(qs, q)
	}
	vh.mu.RUnlock()
	for _, q := range qs {
		q.mu.Lock()
		q.enforceLimitsLocked()
		q.dropExpiredLocked()
		q.dispatchLocked()
		q.mu.Unlock()
	}
}

// opts returns the queue's effective options.
func (q *queue) opts() *QueueOptions {
	if o := q.optsP.Load(); o != nil {
		return o
	}
	d := defaultQueueOptions()
	return &d
}

func (q *queue) setOpts(o QueueOptions) { q.optsP.Store(&o) }

// ValidatePolicy checks p as PutPolicy does (but for the existence of its
// vhost and schema), without storing it: a definitions import checks a
// whole file before it applies any of it.
func ValidatePolicy(p Policy) error {
	_, err := compilePolicy(p)
	return err
}

// ValidateQueueArgs checks a queue's arguments as queue.declare does (but
// for the existence of its x-schema).
func ValidateQueueArgs(vhost, queue string, args message.Table) error {
	_, err := parseQueueArgs(args, queue, vhost)
	return err
}

// ValidExchangeType reports whether exchange.declare accepts the type
// (with its arguments, for x-delayed-message).
func ValidExchangeType(kind string, args message.Table) bool {
	if kind == kindDelayed {
		t, _ := args["x-delayed-type"].(string)
		return validKind(t)
	}
	return validKind(kind)
}
