package api

import (
	"context"
	"encoding/json"
)

// Definitions is GET|POST /api/definitions: RabbitMQ 3.10's definitions
// file, with Sluice's schemas beside RabbitMQ's keys. Per vhost
// (/api/definitions/{vhost}) the objects carry no vhost and users, vhosts
// and permissions are left out.
type Definitions struct {
	RabbitVersion    string            `json:"rabbit_version,omitempty"`
	RabbitMQVersion  string            `json:"rabbitmq_version,omitempty"`
	ProductName      string            `json:"product_name,omitempty"`
	ProductVersion   string            `json:"product_version,omitempty"`
	Users            []DefUser         `json:"users,omitempty"`
	VHosts           []DefVHost        `json:"vhosts,omitempty"`
	Permissions      []Permission      `json:"permissions,omitempty"`
	TopicPermissions []json.RawMessage `json:"topic_permissions,omitempty"`
	Parameters       []DefParameter    `json:"parameters,omitempty"`
	GlobalParameters []json.RawMessage `json:"global_parameters,omitempty"`
	Policies         []Policy          `json:"policies"`
	Queues           []DefQueue        `json:"queues"`
	Exchanges        []DefExchange     `json:"exchanges"`
	Bindings         []DefBinding      `json:"bindings"`
	// Schemas are Sluice's own: the JSON Schemas for x-schema.
	Schemas []DefSchema `json:"schemas,omitempty"`
}

// DefUser is a user of a definitions file.
type DefUser struct {
	Name             string         `json:"name"`
	PasswordHash     string         `json:"password_hash"`
	HashingAlgorithm string         `json:"hashing_algorithm"`
	Tags             any            `json:"tags"` // a list, or RabbitMQ 3.8's comma-separated string
	Limits           map[string]any `json:"limits,omitempty"`
}

// DefVHost is a vhost of a definitions file.
type DefVHost struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Tags        any    `json:"tags,omitempty"`
}

// DefParameter is a runtime parameter; Sluice knows the component
// operator_policy (RabbitMQ exports operator policies so).
type DefParameter struct {
	VHost     string          `json:"vhost"`
	Component string          `json:"component"`
	Name      string          `json:"name"`
	Value     json.RawMessage `json:"value"`
}

// DefQueue is a queue of a definitions file.
type DefQueue struct {
	Name       string         `json:"name"`
	VHost      string         `json:"vhost,omitempty"`
	Durable    bool           `json:"durable"`
	AutoDelete bool           `json:"auto_delete"`
	Arguments  map[string]any `json:"arguments"`
}

// DefExchange is an exchange of a definitions file.
type DefExchange struct {
	Name       string         `json:"name"`
	VHost      string         `json:"vhost,omitempty"`
	Type       string         `json:"type"`
	Durable    bool           `json:"durable"`
	AutoDelete bool           `json:"auto_delete"`
	Internal   bool           `json:"internal"`
	Arguments  map[string]any `json:"arguments"`
}

// DefBinding is a binding of a definitions file.
type DefBinding struct {
	Source          string         `json:"source"`
	VHost           string         `json:"vhost,omitempty"`
	Destination     string         `json:"destination"`
	DestinationType string         `json:"destination_type"`
	RoutingKey      string         `json:"routing_key"`
	Arguments       map[string]any `json:"arguments"`
}

// DefSchema is one of Sluice's schemas in a definitions file.
type DefSchema struct {
	VHost  string          `json:"vhost,omitempty"`
	Name   string          `json:"name"`
	Schema json.RawMessage `json:"schema"`
}

// Policies lists the policies of vhost ("" for all); operator: the
// operator policies.
func (c *Client) Policies(ctx context.Context, vhost string, operator bool) ([]Policy, error) {
	var out []Policy
	p := policyPath(operator, vhost)
	return out, c.Do(ctx, "GET", p, nil, nil, &out)
}

// PutPolicy sets a policy (operator: an operator policy).
func (c *Client) PutPolicy(ctx context.Context, vhost, name string, operator bool, p PolicyPut) error {
	return c.Do(ctx, "PUT", policyPath(operator, vhost, name), nil, p, nil)
}

// DeletePolicy deletes a policy (operator: an operator policy).
func (c *Client) DeletePolicy(ctx context.Context, vhost, name string, operator bool) error {
	return c.Do(ctx, "DELETE", policyPath(operator, vhost, name), nil, nil, nil)
}

func policyPath(operator bool, segs ...string) string {
	base := "policies"
	if operator {
		base = "operator-policies"
	}
	var keep []string
	for _, s := range segs {
		if s != "" {
			keep = append(keep, s)
		}
	}
	return Path(append([]string{base}, keep...)...)
}

// ExportDefinitions returns the definitions file of vhost ("" for the
// whole broker) as the server wrote it.
func (c *Client) ExportDefinitions(ctx context.Context, vhost string) (json.RawMessage, error) {
	var out json.RawMessage
	p := Path("definitions")
	if vhost != "" {
		p = Path("definitions", vhost)
	}
	return out, c.Do(ctx, "GET", p, nil, nil, &out)
}

// ImportDefinitions posts a definitions file (into vhost, when not "").
func (c *Client) ImportDefinitions(ctx context.Context, vhost string, file json.RawMessage) error {
	p := Path("definitions")
	if vhost != "" {
		p = Path("definitions", vhost)
	}
	return c.Do(ctx, "POST", p, nil, file, nil)
}
