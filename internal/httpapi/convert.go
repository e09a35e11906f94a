package httpapi

// Translation between the broker's values (AMQP field tables, basic
// properties, messages) and the API's JSON types.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/broker"
	"github.com/sluicemq/sluice/internal/dlq"
	"github.com/sluicemq/sluice/internal/message"
)

// jsonValue renders an AMQP field value as JSON does it for RabbitMQ:
// timestamps as unix seconds, byte arrays as strings, decimals as numbers.
func jsonValue(v any) any {
	switch x := v.(type) {
	case message.Table:
		return jsonTable(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonValue(e)
		}
		return out
	case time.Time:
		return x.Unix()
	case []byte:
		return string(x)
	case message.Decimal:
		return float64(x.Value) / math.Pow10(int(x.Scale))
	case float32:
		return float64(x)
	}
	return v
}

func jsonTable(t message.Table) map[string]any {
	if t == nil {
		return nil
	}
	out := make(map[string]any, len(t))
	for k, v := range t {
		out[k] = jsonValue(v)
	}
	return out
}

// amqpValue converts a decoded JSON value (numbers as json.Number) into an
// AMQP field value: integers become long, other numbers double, objects
// tables.
func amqpValue(v any) (any, error) {
	switch x := v.(type) {
	case nil, bool, string:
		return x, nil
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n, nil
		}
		f, err := x.Float64()
		if err != nil {
			return nil, fmt.Errorf("number %s: %w", x, err)
		}
		return f, nil
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x), nil
		}
		return x, nil
	case int:
		return int64(x), nil
	case int64:
		return x, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			c, err := amqpValue(e)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case map[string]any:
		return amqpTable(x)
	}
	return nil, fmt.Errorf("unsupported value of type %T", v)
}

func amqpTable(m map[string]any) (message.Table, error) {
	if m == nil {
		return nil, nil
	}
	t := make(message.Table, len(m))
	for k, v := range m {
		c, err := amqpValue(v)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", k, err)
		}
		t[k] = c
	}
	return t, nil
}

// mergeHeaders converts edited JSON headers back, keeping the original
// typed value of every header whose JSON form did not change (so x-death's
// timestamps stay timestamps).
func mergeHeaders(orig message.Table, edited map[string]any) (message.Table, error) {
	out := make(message.Table, len(edited))
	for k, v := range edited {
		if ov, ok := orig[k]; ok && jsonEqual(jsonValue(ov), v) {
			out[k] = ov
			continue
		}
		c, err := amqpValue(v)
		if err != nil {
			return nil, fmt.Errorf("header %q: %w", k, err)
		}
		out[k] = c
	}
	return out, nil
}

// jsonEqual compares two values as their JSON encodings.
func jsonEqual(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		return false
	}
	var x, y any
	if json.Unmarshal(ja, &x) != nil || json.Unmarshal(jb, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func apiProperties(p message.Properties) api.Properties {
	out := api.Properties{
		ContentType: p.ContentType, ContentEncoding: p.ContentEncoding, Headers: jsonTable(p.Headers),
		DeliveryMode: int(p.DeliveryMode), CorrelationID: p.CorrelationID, ReplyTo: p.ReplyTo,
		Expiration: p.Expiration, MessageID: p.MessageID, Type: p.Type, UserID: p.UserID,
		AppID: p.AppID, ClusterID: p.ClusterID,
	}
	if p.Flags&message.FlagPriority != 0 {
		pr := int(p.Priority)
		out.Priority = &pr
	}
	if p.Flags&message.FlagTimestamp != 0 {
		out.Timestamp = p.Timestamp.Unix()
	}
	return out
}

// amqpProperties builds properties from their JSON form; headers are
// converted with mergeHeaders against orig.
func amqpProperties(p api.Properties, orig message.Table) (message.Properties, error) {
	var out message.Properties
	set := func(flag uint16, dst *string, v string) {
		if v != "" {
			*dst = v
			out.Flags |= flag
		}
	}
	set(message.FlagContentType, &out.ContentType, p.ContentType)
	set(message.FlagContentEncoding, &out.ContentEncoding, p.ContentEncoding)
	set(message.FlagCorrelationID, &out.CorrelationID, p.CorrelationID)
	set(message.FlagReplyTo, &out.ReplyTo, p.ReplyTo)
	set(message.FlagExpiration, &out.Expiration, p.Expiration)
	set(message.FlagMessageID, &out.MessageID, p.MessageID)
	set(message.FlagType, &out.Type, p.Type)
	set(message.FlagUserID, &out.UserID, p.UserID)
	set(message.FlagAppID, &out.AppID, p.AppID)
	set(message.FlagClusterID, &out.ClusterID, p.ClusterID)
	if p.DeliveryMode != 0 {
		if p.DeliveryMode != 1 && p.DeliveryMode != 2 {
			return out, fmt.Errorf("properties.delivery_mode: %d, want 1 or 2", p.DeliveryMode)
		}
		out.DeliveryMode = uint8(p.DeliveryMode)
		out.Flags |= message.FlagDeliveryMode
	}
	if p.Priority != nil {
		if *p.Priority < 0 || *p.Priority > 255 {
			return out, fmt.Errorf("properties.priority: %d, want 0..255", *p.Priority)
		}
		out.Priority = uint8(*p.Priority)
		out.Flags |= message.FlagPriority
	}
	if p.Timestamp != 0 {
		out.Timestamp = time.Unix(p.Timestamp, 0).UTC()
		out.Flags |= message.FlagTimestamp
	}
	if p.Headers != nil {
		h, err := mergeHeaders(orig, p.Headers)
		if err != nil {
			return out, fmt.Errorf("properties.headers: %w", err)
		}
		out.Headers = h
		out.Flags |= message.FlagHeaders
	}
	return out, nil
}

// payload renders a body as text when it is printable UTF-8 (and
// encoding is not forced to base64), else base64.
func payload(body []byte, forceBase64 bool) (string, string) {
	if !forceBase64 && printable(body) {
		return string(body), "string"
	}
	return base64.StdEncoding.EncodeToString(body), "base64"
}

func printable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, c := range string(b) {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
			return false
		}
	}
	return true
}

// decodePayload reads a payload in the given encoding.
func decodePayload(p, encoding string) ([]byte, error) {
	switch strings.ToLower(encoding) {
	case "", "string":
		return []byte(p), nil
	case "base64":
		b, err := base64.StdEncoding.DecodeString(p)
		if err != nil {
			return nil, fmt.Errorf("payload: invalid base64: %w", err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("payload_encoding: %q, want \"string\" or \"base64\"", encoding)
}

func apiMessage(sm broker.StoredMessage, forceBase64 bool) api.Message {
	m := sm.Message
	out := api.Message{ID: sm.ID, State: sm.State, DeliveryCount: sm.Deliveries, Redelivered: sm.Redelivered,
		Exchange: m.Exchange, RoutingKey: m.RoutingKey, Properties: apiProperties(m.Properties),
		PayloadBytes: len(m.Body)}
	out.Payload, out.PayloadEncoding = payload(m.Body, forceBase64)
	if !sm.ReadyAt.IsZero() {
		t := sm.ReadyAt.UTC()
		out.ReadyAt = &t
	}
	if d, ok := dlq.LastDeath(m); ok {
		out.Death = &api.Death{Queue: d.Queue, Reason: d.Reason, Exchange: d.Exchange, RoutingKeys: d.Keys,
			Count: d.Count, Time: d.Time.UTC()}
	}
	return out
}

func (s *Server) apiQueue(q broker.QueueInfo) api.Queue {
	out := api.Queue{MessageStats: s.rates.queueStats(q), Name: q.Name, VHost: q.VHost, Durable: q.Durable, AutoDelete: q.AutoDelete, Exclusive: q.Exclusive,
		Arguments: jsonTable(q.Args), Type: "classic", State: "running",
		Messages: q.Messages(), MessagesReady: q.Ready, MessagesUnacknowledged: q.Unacked, MessagesDelayed: q.Delayed,
		MessageBytesReady: q.ReadyBytes, Consumers: q.Consumers, Node: q.Node}
	if out.Arguments == nil {
		out.Arguments = map[string]any{}
	}
	if t, ok := q.Args["x-queue-type"].(string); ok {
		out.Type = t
	}
	if rs, ok := s.b.Replica(q.VHost, q.Name); ok {
		out.Leader, out.Members, out.Online = rs.Leader, rs.Members, rs.Online
	}
	if q.Owner != "" {
		out.OwnerPIDDetails = &api.Owner{Name: q.Owner}
	}
	out.Policy, out.OperatorPolicy, out.EffectivePolicyDefinition = policyFields(q) // policies.go
	return out
}

func (s *Server) apiExchange(x broker.ExchangeInfo) api.Exchange {
	out := api.Exchange{MessageStats: s.rates.exchangeStats(x), Name: x.Name, VHost: x.VHost, Type: x.Type, Durable: x.Durable, AutoDelete: x.AutoDelete,
		Internal: x.Internal, Arguments: jsonTable(x.Args)}
	if out.Arguments == nil {
		out.Arguments = map[string]any{}
	}
	if x.Policy != "" {
		out.Policy = &x.Policy
	}
	return out
}

func apiBinding(b broker.BindingInfo) api.Binding {
	out := api.Binding{Source: b.Source, VHost: b.VHost, Destination: b.Destination, DestinationType: b.DestinationType,
		RoutingKey: b.RoutingKey, Arguments: jsonTable(b.Args), PropertiesKey: propertiesKey(b.RoutingKey, b.Args)}
	if out.Arguments == nil {
		out.Arguments = map[string]any{}
	}
	return out
}

// propertiesKey names a binding in a URL, as RabbitMQ's: the routing key
// ("~" when empty) when it has no arguments, else the key and a hash of the
// arguments.
func propertiesKey(key string, args message.Table) string {
	if len(args) == 0 {
		if key == "" {
			return "~"
		}
		return key
	}
	enc, _ := message.AppendTable(nil, args)
	var h uint32 = 2166136261
	for _, c := range enc {
		h = (h ^ uint32(c)) * 16777619
	}
	return fmt.Sprintf("%s~%08x", key, h)
}
