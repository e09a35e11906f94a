// Package api holds the JSON types of Sluice's HTTP API and a Go client
// for it, shared by the server (internal/httpapi), the CLI and tests.
//
// Where RabbitMQ's management API has a resource, the types use its field
// names (name, vhost, durable, auto_delete, messages_ready, message_stats,
// client_properties, …) so tools written for RabbitMQ read them; Sluice's
// own fields (messages_delayed, the browse and redrive types) sit beside
// them. The package has no goroutines; a Client is safe for concurrent use.
package api

import (
	"encoding/json"
	"time"
)

// Error is the body of every failed request: {"error": "not_found",
// "reason": "no queue 'orders' in vhost '/'"}.
type Error struct {
	Status int    `json:"-"`
	Kind   string `json:"error"`
	Reason string `json:"reason"`
	// Errors lists what failed validation (a 422 of a publish).
	Errors []ValidationError `json:"errors,omitempty"`
}

// ValidationError is one way a message failed its JSON Schema: where in
// the message (a JSON pointer) and why.
type ValidationError struct {
	Pointer string `json:"pointer"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	if e.Reason == "" {
		return e.Kind
	}
	return e.Kind + ": " + e.Reason
}

// Overview is GET /api/overview.
type Overview struct {
	ManagementVersion string         `json:"management_version"`
	RabbitMQVersion   string         `json:"rabbitmq_version"`
	ProductName       string         `json:"product_name"`
	ProductVersion    string         `json:"product_version"`
	ClusterName       string         `json:"cluster_name"`
	Node              string         `json:"node"`
	QueueTotals       QueueTotals    `json:"queue_totals"`
	ObjectTotals      ObjectTotals   `json:"object_totals"`
	MessageStats      MessageStats   `json:"message_stats"`
	Listeners         []Listener     `json:"listeners"`
	Memory            map[string]any `json:"memory,omitempty"`
	// Alarms are the resource alarms in effect (Sluice's; RabbitMQ shows
	// them on the node).
	Alarms []Alarm `json:"alarms"`
}

// QueueTotals sums the queues' depths.
type QueueTotals struct {
	Messages               int `json:"messages"`
	MessagesReady          int `json:"messages_ready"`
	MessagesUnacknowledged int `json:"messages_unacknowledged"`
	MessagesDelayed        int `json:"messages_delayed"`
}

// ObjectTotals counts objects.
type ObjectTotals struct {
	Connections int `json:"connections"`
	Channels    int `json:"channels"`
	Exchanges   int `json:"exchanges"`
	Queues      int `json:"queues"`
	Consumers   int `json:"consumers"`
}

// Listener is one protocol listener.
type Listener struct {
	Protocol  string `json:"protocol"`
	IPAddress string `json:"ip_address"`
	Port      int    `json:"port"`
}

// MessageStats are counters since the broker started, as RabbitMQ's
// message_stats, each with its rate (per second, over the last sampling
// interval) in the matching *_details. On a queue, publish counts the
// messages that entered it; in the overview, the messages clients
// published. Nack, the dead-letter counts and expire are Sluice's.
type MessageStats struct {
	Publish             uint64 `json:"publish"`
	PublishDetails      Rate   `json:"publish_details"`
	DeliverGet          uint64 `json:"deliver_get"`
	DeliverGetDetails   Rate   `json:"deliver_get_details"`
	Deliver             uint64 `json:"deliver"`
	DeliverDetails      Rate   `json:"deliver_details"`
	DeliverNoAck        uint64 `json:"deliver_no_ack"`
	DeliverNoAckDetails Rate   `json:"deliver_no_ack_details"`
	Get                 uint64 `json:"get"`
	GetDetails          Rate   `json:"get_details"`
	GetNoAck            uint64 `json:"get_no_ack"`
	GetNoAckDetails     Rate   `json:"get_no_ack_details"`
	Ack                 uint64 `json:"ack"`
	AckDetails          Rate   `json:"ack_details"`
	Redeliver           uint64 `json:"redeliver"`
	RedeliverDetails    Rate   `json:"redeliver_details"`
	Nack                uint64 `json:"nack"`
	NackDetails         Rate   `json:"nack_details"`
	DeadLetter          uint64 `json:"dead_letter"`
	DeadLetterDetails   Rate   `json:"dead_letter_details"`
	Expire              uint64 `json:"expire"`
	ExpireDetails       Rate   `json:"expire_details"`
	// DeadLetterByReason splits DeadLetter by x-death reason (rejected,
	// expired, maxlen, delivery_limit, invalid).
	DeadLetterByReason map[string]uint64 `json:"dead_letter_by_reason,omitempty"`
	// Overview only.
	ReturnUnroutable        uint64 `json:"return_unroutable,omitempty"`
	ReturnUnroutableDetails *Rate  `json:"return_unroutable_details,omitempty"`
	DropUnroutable          uint64 `json:"drop_unroutable,omitempty"`
	DropUnroutableDetails   *Rate  `json:"drop_unroutable_details,omitempty"`
}

// Rate is a counter's rate, as RabbitMQ's *_details: {"rate": 12.5}.
type Rate struct {
	Rate float64 `json:"rate"`
}

// ExchangeStats are an exchange's message_stats: messages published into
// it and copies it routed out to queues.
type ExchangeStats struct {
	PublishIn         uint64 `json:"publish_in"`
	PublishInDetails  Rate   `json:"publish_in_details"`
	PublishOut        uint64 `json:"publish_out"`
	PublishOutDetails Rate   `json:"publish_out_details"`
}

// VHost is GET /api/vhosts/{name}.
type VHost struct {
	Name                   string `json:"name"`
	Messages               int    `json:"messages"`
	MessagesReady          int    `json:"messages_ready"`
	MessagesUnacknowledged int    `json:"messages_unacknowledged"`
	MessagesDelayed        int    `json:"messages_delayed"`
	// MessageStats sum the counters of the vhost's queues.
	MessageStats MessageStats `json:"message_stats"`
}

// VHostPut is the optional body of PUT /api/vhosts/{name}; RabbitMQ's
// description and tags are accepted and not kept.
type VHostPut struct {
	Description string `json:"description,omitempty"`
	Tags        any    `json:"tags,omitempty"`
}

// Queue is GET /api/queues/{vhost}/{name}.
type Queue struct {
	Name                   string         `json:"name"`
	VHost                  string         `json:"vhost"`
	Durable                bool           `json:"durable"`
	AutoDelete             bool           `json:"auto_delete"`
	Exclusive              bool           `json:"exclusive"`
	Arguments              map[string]any `json:"arguments"`
	Type                   string         `json:"type"`
	State                  string         `json:"state"`
	Messages               int            `json:"messages"`
	MessagesReady          int            `json:"messages_ready"`
	MessagesUnacknowledged int            `json:"messages_unacknowledged"`
	MessagesDelayed        int            `json:"messages_delayed"`
	MessageBytesReady      uint64         `json:"message_bytes_ready"`
	Consumers              int            `json:"consumers"`
	ExclusiveConsumerTag   *string        `json:"exclusive_consumer_tag"`
	OwnerPIDDetails        *Owner         `json:"owner_pid_details,omitempty"`
	MessageStats           MessageStats   `json:"message_stats"`
	// Policy and OperatorPolicy name the policies that apply (null when
	// none does); EffectivePolicyDefinition is their merged definition.
	Policy                    *string        `json:"policy"`
	OperatorPolicy            *string        `json:"operator_policy"`
	EffectivePolicyDefinition map[string]any `json:"effective_policy_definition"`
	// Leader, Members and Online place a quorum queue in a cluster
	// (RabbitMQ's fields; node names as given to --node).
	Leader  string   `json:"leader,omitempty"`
	Members []string `json:"members,omitempty"`
	// Node is the node holding the queue (RabbitMQ's field; a quorum
	// queue's leader), in a cluster only.
	Node   string   `json:"node,omitempty"`
	Online []string `json:"online,omitempty"`
}

// Policy is GET /api/policies/{vhost}/{name} (and an operator policy),
// RabbitMQ's fields.
type Policy struct {
	VHost      string         `json:"vhost,omitempty"`
	Name       string         `json:"name"`
	Pattern    string         `json:"pattern"`
	ApplyTo    string         `json:"apply-to"`
	Definition map[string]any `json:"definition"`
	Priority   int            `json:"priority"`
}

// PolicyPut is the body of PUT /api/policies/{vhost}/{name}.
type PolicyPut struct {
	Pattern    string         `json:"pattern"`
	ApplyTo    string         `json:"apply-to,omitempty"`
	Definition map[string]any `json:"definition"`
	Priority   *int           `json:"priority,omitempty"`
}

// Owner names the connection owning an exclusive queue.
type Owner struct {
	Name string `json:"name"`
}

// QueueDeclare is the body of PUT /api/queues/{vhost}/{name}.
type QueueDeclare struct {
	Durable    *bool          `json:"durable,omitempty"`
	AutoDelete bool           `json:"auto_delete"`
	Arguments  map[string]any `json:"arguments,omitempty"`
}

// Exchange is GET /api/exchanges/{vhost}/{name}.
type Exchange struct {
	Name         string         `json:"name"`
	VHost        string         `json:"vhost"`
	Type         string         `json:"type"`
	Durable      bool           `json:"durable"`
	AutoDelete   bool           `json:"auto_delete"`
	Internal     bool           `json:"internal"`
	Arguments    map[string]any `json:"arguments"`
	MessageStats ExchangeStats  `json:"message_stats"`
	// Policy names the policy that applies (null when none does).
	Policy *string `json:"policy"`
}

// ExchangeDeclare is the body of PUT /api/exchanges/{vhost}/{name}.
type ExchangeDeclare struct {
	Type       string         `json:"type"`
	Durable    *bool          `json:"durable,omitempty"`
	AutoDelete bool           `json:"auto_delete"`
	Internal   bool           `json:"internal"`
	Arguments  map[string]any `json:"arguments,omitempty"`
}

// Binding is an element of GET /api/bindings.
type Binding struct {
	Source          string         `json:"source"`
	VHost           string         `json:"vhost"`
	Destination     string         `json:"destination"`
	DestinationType string         `json:"destination_type"`
	RoutingKey      string         `json:"routing_key"`
	Arguments       map[string]any `json:"arguments"`
	PropertiesKey   string         `json:"properties_key"`
}

// BindingCreate is the body of POST /api/bindings/{vhost}/e/{e}/q/{q}.
type BindingCreate struct {
	RoutingKey string         `json:"routing_key"`
	Arguments  map[string]any `json:"arguments,omitempty"`
}

// Connection is an element of GET /api/connections.
type Connection struct {
	Name             string         `json:"name"`
	VHost            string         `json:"vhost"`
	User             string         `json:"user"`
	Protocol         string         `json:"protocol"`
	PeerHost         string         `json:"peer_host"`
	PeerPort         int            `json:"peer_port"`
	Channels         int            `json:"channels"`
	State            string         `json:"state"`
	ClientProperties map[string]any `json:"client_properties"`
	// RecvOct and SendOct count the socket's bytes since the connection
	// was accepted, as RabbitMQ's recv_oct and send_oct.
	RecvOct uint64 `json:"recv_oct"`
	SendOct uint64 `json:"send_oct"`
}

// Channel is an element of GET /api/channels.
type Channel struct {
	Name                   string            `json:"name"`
	Number                 int               `json:"number"`
	VHost                  string            `json:"vhost"`
	User                   string            `json:"user"`
	ConnectionDetails      ConnectionDetails `json:"connection_details"`
	Consumers              int               `json:"consumer_count"`
	MessagesUnacknowledged int               `json:"messages_unacknowledged"`
	PrefetchCount          int               `json:"prefetch_count"`
	GlobalPrefetchCount    int               `json:"global_prefetch_count"`
	Confirm                bool              `json:"confirm"`
	Transactional          bool              `json:"transactional"`
	State                  string            `json:"state"`
	MessageStats           MessageStats      `json:"message_stats"`
}

// ConnectionDetails names a channel's or consumer's connection.
type ConnectionDetails struct {
	Name     string `json:"name"`
	PeerHost string `json:"peer_host"`
	PeerPort int    `json:"peer_port"`
}

// Consumer is an element of GET /api/consumers.
type Consumer struct {
	ConsumerTag    string         `json:"consumer_tag"`
	Queue          QueueRef       `json:"queue"`
	ChannelDetails ChannelDetails `json:"channel_details"`
	AckRequired    bool           `json:"ack_required"`
	Exclusive      bool           `json:"exclusive"`
	PrefetchCount  int            `json:"prefetch_count"`
	Arguments      map[string]any `json:"arguments"`
	Priority       int64          `json:"priority,omitempty"`
}

// QueueRef names a queue.
type QueueRef struct {
	Name  string `json:"name"`
	VHost string `json:"vhost"`
}

// ChannelDetails names a consumer's channel.
type ChannelDetails struct {
	Name           string `json:"name"`
	Number         int    `json:"number"`
	ConnectionName string `json:"connection_name"`
	User           string `json:"user"`
}

// User is GET /api/users/{name}.
type User struct {
	Name             string   `json:"name"`
	PasswordHash     string   `json:"password_hash"`
	HashingAlgorithm string   `json:"hashing_algorithm"`
	Tags             []string `json:"tags"`
}

// UserPut is the body of PUT /api/users/{name}. Tags is a list or a
// comma-separated string, as RabbitMQ accepts both.
type UserPut struct {
	Password     string `json:"password,omitempty"`
	PasswordHash string `json:"password_hash,omitempty"`
	Tags         any    `json:"tags"`
}

// Permission is GET /api/permissions/{vhost}/{user}.
type Permission struct {
	User      string `json:"user"`
	VHost     string `json:"vhost"`
	Configure string `json:"configure"`
	Write     string `json:"write"`
	Read      string `json:"read"`
}

// Whoami is GET /api/whoami.
type Whoami struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

// Properties are a message's basic properties in RabbitMQ's JSON form.
// Headers keep AMQP values as JSON: timestamps as seconds, byte arrays as
// strings, tables as objects.
type Properties struct {
	ContentType     string         `json:"content_type,omitempty"`
	ContentEncoding string         `json:"content_encoding,omitempty"`
	Headers         map[string]any `json:"headers,omitempty"`
	DeliveryMode    int            `json:"delivery_mode,omitempty"`
	Priority        *int           `json:"priority,omitempty"`
	CorrelationID   string         `json:"correlation_id,omitempty"`
	ReplyTo         string         `json:"reply_to,omitempty"`
	Expiration      string         `json:"expiration,omitempty"`
	MessageID       string         `json:"message_id,omitempty"`
	Timestamp       int64          `json:"timestamp,omitempty"`
	Type            string         `json:"type,omitempty"`
	UserID          string         `json:"user_id,omitempty"`
	AppID           string         `json:"app_id,omitempty"`
	ClusterID       string         `json:"cluster_id,omitempty"`
}

// Publish is the body of POST /api/exchanges/{vhost}/{name}/publish.
// Delay (ms) is Sluice's: it sets the x-delay header.
type Publish struct {
	Properties      Properties `json:"properties"`
	RoutingKey      string     `json:"routing_key"`
	Payload         string     `json:"payload"`
	PayloadEncoding string     `json:"payload_encoding"` // "string" (default) or "base64"
	Delay           int64      `json:"delay,omitempty"`
}

// Published answers a publish.
type Published struct {
	Routed bool `json:"routed"`
}

// Get is the body of POST /api/queues/{vhost}/{name}/get.
type Get struct {
	Count    int    `json:"count"`
	AckMode  string `json:"ackmode"`  // ack_requeue_true, ack_requeue_false, reject_requeue_true, reject_requeue_false
	Encoding string `json:"encoding"` // auto or base64
	Truncate int    `json:"truncate,omitempty"`
}

// GotMessage is an element of a get's answer.
type GotMessage struct {
	PayloadBytes    int        `json:"payload_bytes"`
	Redelivered     bool       `json:"redelivered"`
	Exchange        string     `json:"exchange"`
	RoutingKey      string     `json:"routing_key"`
	MessageCount    int        `json:"message_count"`
	Properties      Properties `json:"properties"`
	Payload         string     `json:"payload"`
	PayloadEncoding string     `json:"payload_encoding"`
}

// Message is one message of a browse: Sluice's own resource.
type Message struct {
	ID              uint64     `json:"id"`
	State           string     `json:"state"` // ready, unacked, delayed
	DeliveryCount   int        `json:"delivery_count"`
	Redelivered     bool       `json:"redelivered"`
	ReadyAt         *time.Time `json:"ready_at,omitempty"`
	Exchange        string     `json:"exchange"`
	RoutingKey      string     `json:"routing_key"`
	Properties      Properties `json:"properties"`
	PayloadBytes    int        `json:"payload_bytes"`
	Payload         string     `json:"payload"`
	PayloadEncoding string     `json:"payload_encoding"` // string or base64
	Death           *Death     `json:"death,omitempty"`
}

// Death summarizes the newest x-death entry.
type Death struct {
	Queue       string    `json:"queue"`
	Reason      string    `json:"reason"`
	Exchange    string    `json:"exchange"`
	RoutingKeys []string  `json:"routing_keys"`
	Count       int64     `json:"count"`
	Time        time.Time `json:"time"`
}

// MessagePage is GET /api/queues/{vhost}/{name}/messages.
type MessagePage struct {
	Messages []Message `json:"messages"`
	// Next is the value of after for the next page; More is false at the
	// end of the queue.
	Next uint64 `json:"next"`
	More bool   `json:"more"`
}

// MessageEdit is the body of PUT …/messages/{id}: the fields given replace
// the message's; absent ones stay.
type MessageEdit struct {
	Properties      *Properties `json:"properties,omitempty"`
	RoutingKey      *string     `json:"routing_key,omitempty"`
	Payload         *string     `json:"payload,omitempty"`
	PayloadEncoding string      `json:"payload_encoding,omitempty"`
}

// Filter selects messages for a browse or a redrive.
type Filter struct {
	Reason string `json:"reason,omitempty"`
	Source string `json:"source,omitempty"`
	Header string `json:"header,omitempty"` // "name" or "name=value"
	Body   string `json:"body,omitempty"`
	Since  string `json:"since,omitempty"` // RFC 3339
	Until  string `json:"until,omitempty"` // RFC 3339
}

// Redrive is the body of POST /api/queues/{vhost}/{name}/redrive. With
// neither IDs nor Filter every message of the queue moves.
type Redrive struct {
	IDs    []uint64 `json:"ids,omitempty"`
	Filter *Filter  `json:"filter,omitempty"`
	// Target is a queue name; TargetExchange an exchange. Both empty: each
	// message goes back to the queue it died in.
	Target         string  `json:"target,omitempty"`
	TargetExchange string  `json:"target_exchange,omitempty"`
	Rate           float64 `json:"rate,omitempty"` // messages per second; 0: unlimited
	DryRun         bool    `json:"dry_run,omitempty"`
}

// Task is a long-running operation: GET /api/tasks/{id}.
type Task struct {
	ID       string      `json:"id"`
	Kind     string      `json:"kind"`
	VHost    string      `json:"vhost"`
	Queue    string      `json:"queue"`
	User     string      `json:"user"`
	State    string      `json:"state"` // running, done, cancelled, failed
	DryRun   bool        `json:"dry_run"`
	Total    int         `json:"total"`
	Done     int         `json:"done"`
	Moved    int         `json:"moved"`
	Failed   int         `json:"failed"`
	Errors   []TaskError `json:"errors,omitempty"`
	Created  time.Time   `json:"created"`
	Finished *time.Time  `json:"finished,omitempty"`
	Error    string      `json:"error,omitempty"`
	Moves    []TaskMove  `json:"moves,omitempty"` // dry run: where each would go
}

// TaskError is one message a task could not handle.
type TaskError struct {
	ID     uint64 `json:"id"`
	Reason string `json:"reason"`
	// Status is the HTTP status the failure has: 422 when the target's
	// x-schema refuses the message (Errors then says why), 403 without
	// write permission on its destination, 409 while it is unacked, 404
	// when it is gone.
	Status int               `json:"status,omitempty"`
	Errors []ValidationError `json:"errors,omitempty"`
}

// TaskMove is where a message goes.
type TaskMove struct {
	ID uint64 `json:"id"`
	To string `json:"to"`
}

// AuditEntry is an element of GET /api/audit.
type AuditEntry struct {
	ID     string    `json:"id"`
	Time   time.Time `json:"time"`
	User   string    `json:"user"`
	Action string    `json:"action"`
	VHost  string    `json:"vhost"`
	Queue  string    `json:"queue"`
	Detail string    `json:"detail,omitempty"`
	IDs    []uint64  `json:"ids,omitempty"`
	Count  int       `json:"count"`
}

// Schema is GET /api/schemas/{vhost}/{name}. PUT takes {"schema": doc}.
type Schema struct {
	Name   string          `json:"name"`
	VHost  string          `json:"vhost"`
	Schema json.RawMessage `json:"schema"`
	UsedBy []string        `json:"used_by"`
}

// Purged answers a purge.
type Purged struct {
	MessageCount int `json:"message_count"`
}
