package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Client calls a Sluice (or RabbitMQ management) HTTP API with basic auth.
type Client struct {
	BaseURL  string // "http://127.0.0.1:15672"
	User     string
	Password string
	HTTP     *http.Client // nil: http.DefaultClient
}

// NewClient returns a client of the API at baseURL.
func NewClient(baseURL, user, password string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), User: user, Password: password}
}

// Path joins escaped path segments under /api: Path("queues", "/", "q")
// is "/api/queues/%2F/q".
func Path(segs ...string) string {
	var b strings.Builder
	b.WriteString("/api")
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// Do sends a request with a JSON body (nil for none) and decodes a JSON
// answer into out (nil to discard it). A status of 400 or more is an
// *Error.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	u := c.BaseURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	req.SetBasicAuth(c.User, c.Password)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		e := &Error{Status: resp.StatusCode}
		if jerr := json.Unmarshal(data, e); jerr != nil || e.Kind == "" {
			e.Kind = http.StatusText(resp.StatusCode)
			e.Reason = strings.TrimSpace(string(data))
		}
		return e
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// StatusOf returns the HTTP status of an *Error in err's chain, or 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

func (c *Client) Overview(ctx context.Context) (Overview, error) {
	var o Overview
	return o, c.Do(ctx, "GET", Path("overview"), nil, nil, &o)
}

func (c *Client) Whoami(ctx context.Context) (Whoami, error) {
	var w Whoami
	return w, c.Do(ctx, "GET", Path("whoami"), nil, nil, &w)
}

// VHosts lists the vhosts.
func (c *Client) VHosts(ctx context.Context) ([]VHost, error) {
	var vs []VHost
	return vs, c.Do(ctx, "GET", Path("vhosts"), nil, nil, &vs)
}

// PutVHost creates a vhost (an existing one is left as it is).
func (c *Client) PutVHost(ctx context.Context, name string) error {
	return c.Do(ctx, "PUT", Path("vhosts", name), nil, VHostPut{}, nil)
}

// DeleteVHost deletes a vhost and everything in it.
func (c *Client) DeleteVHost(ctx context.Context, name string) error {
	return c.Do(ctx, "DELETE", Path("vhosts", name), nil, nil, nil)
}

// Queues lists the queues of a vhost ("" for all).
func (c *Client) Queues(ctx context.Context, vhost string) ([]Queue, error) {
	var qs []Queue
	p := Path("queues")
	if vhost != "" {
		p = Path("queues", vhost)
	}
	return qs, c.Do(ctx, "GET", p, nil, nil, &qs)
}

func (c *Client) Queue(ctx context.Context, vhost, name string) (Queue, error) {
	var q Queue
	return q, c.Do(ctx, "GET", Path("queues", vhost, name), nil, nil, &q)
}

func (c *Client) DeclareQueue(ctx context.Context, vhost, name string, d QueueDeclare) error {
	return c.Do(ctx, "PUT", Path("queues", vhost, name), nil, d, nil)
}

// DeleteQueue deletes a queue; ifEmpty and ifUnused as RabbitMQ's if-empty
// and if-unused query parameters.
func (c *Client) DeleteQueue(ctx context.Context, vhost, name string, ifEmpty, ifUnused bool) error {
	q := url.Values{}
	if ifEmpty {
		q.Set("if-empty", "true")
	}
	if ifUnused {
		q.Set("if-unused", "true")
	}
	return c.Do(ctx, "DELETE", Path("queues", vhost, name), q, nil, nil)
}

func (c *Client) Purge(ctx context.Context, vhost, name string) (Purged, error) {
	var p Purged
	return p, c.Do(ctx, "DELETE", Path("queues", vhost, name, "contents"), nil, nil, &p)
}

func (c *Client) Exchanges(ctx context.Context, vhost string) ([]Exchange, error) {
	var xs []Exchange
	p := Path("exchanges")
	if vhost != "" {
		p = Path("exchanges", vhost)
	}
	return xs, c.Do(ctx, "GET", p, nil, nil, &xs)
}

func (c *Client) DeclareExchange(ctx context.Context, vhost, name string, d ExchangeDeclare) error {
	return c.Do(ctx, "PUT", Path("exchanges", vhost, name), nil, d, nil)
}

func (c *Client) DeleteExchange(ctx context.Context, vhost, name string) error {
	return c.Do(ctx, "DELETE", Path("exchanges", vhost, name), nil, nil, nil)
}

func (c *Client) Bindings(ctx context.Context, vhost string) ([]Binding, error) {
	var bs []Binding
	p := Path("bindings")
	if vhost != "" {
		p = Path("bindings", vhost)
	}
	return bs, c.Do(ctx, "GET", p, nil, nil, &bs)
}

// Bind binds queue to exchange.
func (c *Client) Bind(ctx context.Context, vhost, exchange, queue string, b BindingCreate) error {
	return c.Do(ctx, "POST", Path("bindings", vhost, "e", exchange, "q", queue), nil, b, nil)
}

func (c *Client) Publish(ctx context.Context, vhost, exchange string, p Publish) (Published, error) {
	var r Published
	if exchange == "" {
		exchange = "amq.default"
	}
	return r, c.Do(ctx, "POST", Path("exchanges", vhost, exchange, "publish"), nil, p, &r)
}

func (c *Client) Get(ctx context.Context, vhost, queue string, g Get) ([]GotMessage, error) {
	var ms []GotMessage
	return ms, c.Do(ctx, "POST", Path("queues", vhost, queue, "get"), nil, g, &ms)
}

func (c *Client) Connections(ctx context.Context) ([]Connection, error) {
	var cs []Connection
	return cs, c.Do(ctx, "GET", Path("connections"), nil, nil, &cs)
}

func (c *Client) CloseConnection(ctx context.Context, name string) error {
	return c.Do(ctx, "DELETE", Path("connections", name), nil, nil, nil)
}

func (c *Client) Consumers(ctx context.Context) ([]Consumer, error) {
	var cs []Consumer
	return cs, c.Do(ctx, "GET", Path("consumers"), nil, nil, &cs)
}

// Browse pages through a queue without consuming.
func (c *Client) Browse(ctx context.Context, vhost, queue string, after uint64, limit int, f Filter) (MessagePage, error) {
	q := url.Values{}
	q.Set("after", strconv.FormatUint(after, 10))
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	for k, v := range map[string]string{"reason": f.Reason, "source": f.Source, "header": f.Header,
		"body": f.Body, "since": f.Since, "until": f.Until} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var p MessagePage
	return p, c.Do(ctx, "GET", Path("queues", vhost, queue, "messages"), q, nil, &p)
}

func (c *Client) Message(ctx context.Context, vhost, queue string, id uint64) (Message, error) {
	var m Message
	return m, c.Do(ctx, "GET", Path("queues", vhost, queue, "messages", strconv.FormatUint(id, 10)), nil, nil, &m)
}

func (c *Client) EditMessage(ctx context.Context, vhost, queue string, id uint64, e MessageEdit) (Message, error) {
	var m Message
	return m, c.Do(ctx, "PUT", Path("queues", vhost, queue, "messages", strconv.FormatUint(id, 10)), nil, e, &m)
}

func (c *Client) DeleteMessage(ctx context.Context, vhost, queue string, id uint64) error {
	return c.Do(ctx, "DELETE", Path("queues", vhost, queue, "messages", strconv.FormatUint(id, 10)), nil, nil, nil)
}

// Redrive starts a redrive task.
func (c *Client) Redrive(ctx context.Context, vhost, queue string, r Redrive) (Task, error) {
	var t Task
	return t, c.Do(ctx, "POST", Path("queues", vhost, queue, "redrive"), nil, r, &t)
}

func (c *Client) Task(ctx context.Context, id string) (Task, error) {
	var t Task
	return t, c.Do(ctx, "GET", Path("tasks", id), nil, nil, &t)
}

func (c *Client) CancelTask(ctx context.Context, id string) (Task, error) {
	var t Task
	return t, c.Do(ctx, "DELETE", Path("tasks", id), nil, nil, &t)
}

func (c *Client) Audit(ctx context.Context) ([]AuditEntry, error) {
	var es []AuditEntry
	return es, c.Do(ctx, "GET", Path("audit"), nil, nil, &es)
}

func (c *Client) Users(ctx context.Context) ([]User, error) {
	var us []User
	return us, c.Do(ctx, "GET", Path("users"), nil, nil, &us)
}

func (c *Client) PutUser(ctx context.Context, name string, u UserPut) error {
	return c.Do(ctx, "PUT", Path("users", name), nil, u, nil)
}

func (c *Client) DeleteUser(ctx context.Context, name string) error {
	return c.Do(ctx, "DELETE", Path("users", name), nil, nil, nil)
}

func (c *Client) Permissions(ctx context.Context) ([]Permission, error) {
	var ps []Permission
	return ps, c.Do(ctx, "GET", Path("permissions"), nil, nil, &ps)
}

func (c *Client) SetPermission(ctx context.Context, vhost, user string, p Permission) error {
	return c.Do(ctx, "PUT", Path("permissions", vhost, user), nil, p, nil)
}

func (c *Client) DeletePermission(ctx context.Context, vhost, user string) error {
	return c.Do(ctx, "DELETE", Path("permissions", vhost, user), nil, nil, nil)
}

func (c *Client) Schemas(ctx context.Context, vhost string) ([]Schema, error) {
	var ss []Schema
	p := Path("schemas")
	if vhost != "" {
		p = Path("schemas", vhost)
	}
	return ss, c.Do(ctx, "GET", p, nil, nil, &ss)
}

func (c *Client) Schema(ctx context.Context, vhost, name string) (Schema, error) {
	var s Schema
	return s, c.Do(ctx, "GET", Path("schemas", vhost, name), nil, nil, &s)
}

// PutSchema registers a JSON Schema document under name (sent as
// {"schema": doc}).
func (c *Client) PutSchema(ctx context.Context, vhost, name string, doc json.RawMessage) error {
	return c.Do(ctx, "PUT", Path("schemas", vhost, name), nil, map[string]json.RawMessage{"schema": doc}, nil)
}

func (c *Client) DeleteSchema(ctx context.Context, vhost, name string) error {
	return c.Do(ctx, "DELETE", Path("schemas", vhost, name), nil, nil, nil)
}
