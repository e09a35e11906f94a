// Package httpapi is Sluice's HTTP API under /api and its Prometheus
// /metrics, a second front door onto the broker beside AMQP. Where
// RabbitMQ's management API has a resource it uses the same paths,
// methods and JSON (package api); Sluice's own endpoints (browse, edit,
// redrive, tasks, audit) sit beside them. Requests authenticate with basic
// auth against the broker's users; tags administrator, management and
// monitoring and per-vhost permissions decide what a user may do.
//
// Goroutines: Serve runs net/http's server on the caller's goroutine;
// net/http runs each request on its own goroutine. Redrive tasks run in
// the dead-letter workflow (package dlq), which New starts (resuming the
// tasks a restart interrupted) and Close stops. The rate sampler (stats.go) runs on one
// goroutine started by New and stopped by Close. A Server is safe for
// concurrent use.
package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicemq/sluice/internal/access"
	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/broker"
	"github.com/sluicemq/sluice/internal/dlq"
	"github.com/sluicemq/sluice/internal/listen"
)

// Config configures the HTTP API.
type Config struct {
	// Addr is where cmd/sluice listens (--http).
	Addr   string
	Logger *slog.Logger
	// Now is the clock; tests replace it.
	Now func() time.Time
	// MaxBodyBytes bounds a request body, except those below.
	MaxBodyBytes int64
	// MaxMessageSize is the largest message body (--max-message-size);
	// a publish or an edit may send it base64-encoded with its envelope.
	MaxMessageSize int64
	// MaxDefinitionsBytes bounds a definitions import.
	MaxDefinitionsBytes int64
	// DataDir is the broker's data directory, for the free-disk metric
	// ("" leaves the metric out).
	DataDir string
	// ClusterName and Version are reported by /api/overview.
	ClusterName string
	Version     string
	// RedriveChunk is how many messages a redrive task moves per step.
	RedriveChunk int
	// KeepTasks bounds the finished tasks kept for GET /api/tasks/{id}.
	KeepTasks int
	// SampleInterval is how often the message counters are sampled for
	// the rates in message_stats (0: only once, at New; no rates).
	SampleInterval time.Duration
	// Node reports memory, disk and alarms (nil: unknown, reported as
	// zero and no alarm).
	Node func() NodeStatus
	// Listeners reports the broker's protocol listeners (nil: only the
	// HTTP listener at Addr).
	Listeners func() []api.Listener
	// NodeName names this broker in the overview, /api/nodes and the
	// metrics' rabbitmq_node label.
	NodeName string
	// ReadHeaderTimeout, ReadTimeout and IdleTimeout bound how long a
	// client may take to send a request's headers, its whole request, and
	// how long an idle keep-alive connection stays open: a client that
	// announces a body and never sends it cannot hold a descriptor.
	ReadHeaderTimeout, ReadTimeout, IdleTimeout time.Duration
	// MaxConnections bounds the open HTTP connections of all listeners
	// together (0: no bound); one more is closed at accept.
	MaxConnections int
}

// DefaultConfig returns the configuration `sluice serve` starts with.
func DefaultConfig() Config {
	return Config{
		Addr:         "127.0.0.1:15672",
		Logger:       slog.Default(),
		Now:          time.Now,
		MaxBodyBytes: 1 << 20,

		MaxMessageSize:      128 << 20,
		MaxDefinitionsBytes: 16 << 20,
		ClusterName:         "sluice",
		NodeName:            "sluice@localhost",
		Version:             "dev",
		RedriveChunk:        100,
		KeepTasks:           100,

		SampleInterval: 5 * time.Second,

		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxConnections:    1024,
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case c.MaxBodyBytes < 1:
		return fmt.Errorf("http config: MaxBodyBytes %d, want at least 1", c.MaxBodyBytes)
	case c.MaxMessageSize < 1:
		return fmt.Errorf("http config: MaxMessageSize %d, want at least 1", c.MaxMessageSize)
	case c.MaxDefinitionsBytes < 1:
		return fmt.Errorf("http config: MaxDefinitionsBytes %d, want at least 1", c.MaxDefinitionsBytes)
	case c.RedriveChunk < 1:
		return fmt.Errorf("http config: RedriveChunk %d, want at least 1", c.RedriveChunk)
	case c.KeepTasks < 1:
		return fmt.Errorf("http config: KeepTasks %d, want at least 1", c.KeepTasks)
	case c.SampleInterval < 0:
		return fmt.Errorf("http config: SampleInterval %v is negative", c.SampleInterval)
	case c.MaxConnections < 0:
		return fmt.Errorf("http config: MaxConnections %d is negative", c.MaxConnections)
	case c.ReadHeaderTimeout <= 0 || c.ReadTimeout <= 0 || c.IdleTimeout <= 0:
		return errors.New("http config: ReadHeaderTimeout, ReadTimeout and IdleTimeout must be positive")
	}
	return nil
}

// Connections is what the API needs of the AMQP front door
// (amqpserver.Server): its live connections, and closing one with
// 320 CONNECTION_FORCED.
type Connections interface {
	// Connections returns the broker sessions of the open connections.
	Connections() []*broker.Connection
	// CloseConnection closes the named connection with 320
	// CONNECTION_FORCED and reason; it reports false when no connection
	// has that name.
	CloseConnection(name, reason string) bool
}

// Server serves the API.
type Server struct {
	cfg      Config
	b        *broker.Broker
	conns    Connections // may be nil: no connections listed
	log      *slog.Logger
	mux      *http.ServeMux
	dlq      *dlq.Workflow    // the dead-letter workflow: edits, redrive tasks
	auditLog *access.AuditLog // kept in the broker's store
	rates    *sampler         // stats.go
	http     *http.Server
	// started is when New ran, for the node's uptime.
	started time.Time

	sessions *sessionStore // session.go

	closeOnce sync.Once
	// openConns counts the HTTP connections of every listener, against
	// Config.MaxConnections.
	openConns atomic.Int64
}

// countConn keeps openConns: net/http reports every connection's states.
func (s *Server) countConn(_ net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		s.openConns.Add(1)
	case http.StateClosed, http.StateHijacked:
		s.openConns.Add(-1)
	}
}

// New returns the API over b. conns may be nil (no AMQP front door).
func New(cfg Config, b *broker.Broker, conns Connections) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if b == nil {
		return nil, errors.New("httpapi: broker is nil")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := b.SeedPermissions(); err != nil {
		return nil, fmt.Errorf("httpapi: %w", err)
	}
	s := &Server{cfg: cfg, b: b, conns: conns, log: cfg.Logger, mux: http.NewServeMux(), started: cfg.Now()}
	s.auditLog = access.NewAuditLog(b, cfg.Now)
	var err error
	s.dlq, err = dlq.New(dlq.Config{Logger: cfg.Logger, Now: cfg.Now, RedriveChunk: cfg.RedriveChunk,
		KeepTasks: cfg.KeepTasks, User: s.workflowUser, Audit: s.auditLog}, b)
	if err != nil {
		return nil, fmt.Errorf("httpapi: %w", err)
	}
	s.sessions = newSessionStore(cfg.Now)
	s.rates = newSampler(b, conns, cfg.Now, cfg.SampleInterval)
	s.rates.start()
	s.routes()
	s.http = &http.Server{Handler: s,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout, ReadTimeout: cfg.ReadTimeout, IdleTimeout: cfg.IdleTimeout,
		ErrorLog:  slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
		ConnState: s.countConn}
	return s, nil
}

// Handler returns the API's handler (for tests and for mounting).
func (s *Server) Handler() http.Handler { return s }

// Serve serves on ln until Close; it returns http.ErrServerClosed then.
// It may be called for several listeners. A failed accept is retried
// after a pause (listen.Retry), never the end of the listener; past
// Config.MaxConnections open connections a new one is closed at once.
func (s *Server) Serve(ln net.Listener) error {
	open := func() int { return int(s.openConns.Load()) }
	return s.http.Serve(listen.Cap(listen.Retry(ln, "http", s.log), s.cfg.MaxConnections, open, "http", s.log))
}

// Close stops the listener, cancels running tasks and waits for them and
// for requests in flight (until ctx ends).
func (s *Server) Close(ctx context.Context) error {
	var err error
	s.closeOnce.Do(func() {
		err = s.http.Shutdown(ctx)
		if terr := s.dlq.Close(ctx); err == nil {
			err = terr
		}
		s.rates.close()
	})
	return err
}

// handler is an authenticated route's handler.
type handler func(w http.ResponseWriter, r *http.Request, u *user)

// route registers an authenticated handler whose body may be up to
// Config.MaxBodyBytes.
func (s *Server) route(pattern string, need tagNeed, h handler) {
	s.routeSized(pattern, need, s.cfg.MaxBodyBytes, h)
}

// messageBodyBytes bounds a body that carries a message (publish, edit):
// the largest message, base64-encoded, and its envelope.
func (s *Server) messageBodyBytes() int64 { return s.cfg.MaxMessageSize/3*4 + 4 + messageEnvelopeBytes }

// messageEnvelopeBytes is what a message body may carry beside its
// payload: properties, headers, routing key.
const messageEnvelopeBytes = 1 << 20

// routeSized registers an authenticated handler whose body may be up to
// limit bytes. The guards (guard.go) and the authentication come first;
// the handler reads the body, after it has checked permissions.
func (s *Server) routeSized(pattern string, need tagNeed, limit int64, h handler) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if guardForged(w, r) {
			return
		}
		u, err := s.authenticateAny(r) // session.go: basic auth or the console's cookie
		if writeSessionError(w, err) {
			return
		}
		var throttled *access.Throttled
		if errors.As(err, &throttled) {
			w.Header().Set("Retry-After", strconv.Itoa(int(throttled.Wait/time.Second)+1))
			writeError(w, http.StatusTooManyRequests, "too_many_requests", err.Error())
			return
		}
		if err != nil {
			challenge(w, r, err.Error())
			return
		}
		if !u.may(need) {
			writeError(w, http.StatusForbidden, "not_authorised", fmt.Sprintf("user '%s' lacks the tag for this request", u.name))
			return
		}
		if guardJSON(w, r) {
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		h(w, r, u)
	})
}

func (s *Server) routes() {
	s.mux.Handle("GET /metrics", s.metricsHandler(false))
	s.mux.Handle("GET /metrics/per-object", s.metricsHandler(true))
	s.route("GET /api/overview", needMonitoringOrManagement, s.overview)
	s.route("GET /api/whoami", needAny, s.whoami)
	s.route("GET /api/vhosts", needMonitoringOrManagement, s.vhosts)
	s.route("GET /api/vhosts/{vhost}", needMonitoringOrManagement, s.vhost)
	s.route("PUT /api/vhosts/{vhost}", needAdministrator, s.putVHost)       // vhosts.go
	s.route("DELETE /api/vhosts/{vhost}", needAdministrator, s.deleteVHost) // vhosts.go

	s.route("GET /api/queues", needMonitoringOrManagement, s.listQueues)
	s.route("GET /api/queues/{vhost}", needMonitoringOrManagement, s.listQueues)
	s.route("GET /api/queues/{vhost}/{name}", needMonitoringOrManagement, s.getQueue)
	s.route("PUT /api/queues/{vhost}/{name}", needManagement, s.putQueue)
	s.route("DELETE /api/queues/{vhost}/{name}", needManagement, s.deleteQueue)
	s.route("DELETE /api/queues/{vhost}/{name}/contents", needManagement, s.purgeQueue)
	s.route("POST /api/queues/{vhost}/{name}/get", needManagement, s.getMessages)
	s.route("GET /api/queues/{vhost}/{name}/bindings", needMonitoringOrManagement, s.queueBindings)
	s.route("GET /api/queues/{vhost}/{name}/messages", needManagement, s.browse)
	s.route("GET /api/queues/{vhost}/{name}/messages/{id}", needManagement, s.getMessage)
	s.routeSized("PUT /api/queues/{vhost}/{name}/messages/{id}", needManagement, s.messageBodyBytes(), s.putMessage)
	s.route("DELETE /api/queues/{vhost}/{name}/messages/{id}", needManagement, s.deleteMessage)
	s.route("POST /api/queues/{vhost}/{name}/redrive", needManagement, s.redrive)
	s.memberRoutes() // members.go
	s.route("GET /api/tasks", needManagement, s.listTasks)
	s.route("GET /api/tasks/{id}", needManagement, s.getTask)
	s.route("DELETE /api/tasks/{id}", needManagement, s.cancelTask)
	s.route("GET /api/audit", needManagement, s.audit)

	s.route("GET /api/exchanges", needMonitoringOrManagement, s.listExchanges)
	s.route("GET /api/exchanges/{vhost}", needMonitoringOrManagement, s.listExchanges)
	s.route("GET /api/exchanges/{vhost}/{name}", needMonitoringOrManagement, s.getExchange)
	s.route("PUT /api/exchanges/{vhost}/{name}", needManagement, s.putExchange)
	s.route("DELETE /api/exchanges/{vhost}/{name}", needManagement, s.deleteExchange)
	s.routeSized("POST /api/exchanges/{vhost}/{name}/publish", needManagement, s.messageBodyBytes(), s.publish)

	s.route("GET /api/bindings", needMonitoringOrManagement, s.listBindings)
	s.route("GET /api/bindings/{vhost}", needMonitoringOrManagement, s.listBindings)
	s.route("GET /api/bindings/{vhost}/e/{exchange}/q/{queue}", needMonitoringOrManagement, s.listQueueBindings)
	s.route("POST /api/bindings/{vhost}/e/{exchange}/q/{queue}", needManagement, s.bindQueue)
	s.route("DELETE /api/bindings/{vhost}/e/{exchange}/q/{queue}/{props}", needManagement, s.unbindQueue)

	s.route("GET /api/connections", needMonitoringOrManagement, s.listConnections)
	s.route("GET /api/connections/{name}", needMonitoringOrManagement, s.getConnection)
	s.route("DELETE /api/connections/{name}", needManagement, s.closeConnection)
	s.route("GET /api/channels", needMonitoringOrManagement, s.listChannels)
	s.route("GET /api/consumers", needMonitoringOrManagement, s.listConsumers)
	s.route("GET /api/consumers/{vhost}", needMonitoringOrManagement, s.listConsumers)

	s.route("GET /api/users", needAdministrator, s.listUsers)
	s.route("GET /api/users/{name}", needAdministrator, s.getUser)
	s.route("PUT /api/users/{name}", needAdministrator, s.putUser)
	s.route("DELETE /api/users/{name}", needAdministrator, s.deleteUser)
	s.route("GET /api/users/{name}/permissions", needAdministrator, s.userPermissions)
	s.route("GET /api/permissions", needAdministrator, s.listPermissions)
	s.route("GET /api/permissions/{vhost}/{user}", needAdministrator, s.getPermission)
	s.route("PUT /api/permissions/{vhost}/{user}", needAdministrator, s.putPermission)
	s.route("DELETE /api/permissions/{vhost}/{user}", needAdministrator, s.deletePermission)
	s.routeSchemas()     // schemas.go
	s.routeBindings()    // bindings.go
	s.routePolicies()    // policies.go
	s.routeLimits()      // limits.go
	s.routeDefinitions() // definitions.go
	s.routeHealth()      // health.go
	s.routeConsole()     // session.go
	s.routeDeadLetters() // deadletters.go
	s.routeSchemaCheck() // schemacheck.go

}

// ServeHTTP dispatches to the routes, answering an unknown path (404) or
// method (405) with a JSON error as well.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.Contains(r.URL.Path, slashMark) {
		// No name holds NUL (broker.CheckName), and markSlashes uses it.
		writeError(w, http.StatusBadRequest, "bad_request", "a path may not hold NUL (%00): no name does")
		return
	}
	r = markSlashes(r)
	r = trimTrailingSlash(r)
	h, pattern := s.mux.Handler(r)
	if pattern != "" {
		s.mux.ServeHTTP(w, r)
		return
	}
	probe := &statusProbe{header: http.Header{}}
	h.ServeHTTP(probe, r)
	if probe.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", probe.header.Get("Allow"))
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
			fmt.Sprintf("method %s not allowed on %s; allowed: %s", r.Method, r.URL.Path, probe.header.Get("Allow")))
		return
	}
	if probe.status >= 300 && probe.status < 400 {
		h.ServeHTTP(w, r) // ServeMux's redirect to a cleaned path
		return
	}
	writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path))
}

// slashMark stands for an escaped slash (%2F) inside a path segment while
// the mux matches: vhost "/" is "%2F", and ServeMux would otherwise clean
// "/api/queues/%2F/q" into another path. pathValue turns it back. It is
// NUL, which no name may hold, so no character a name may hold turns
// into "/" (U+E000, the mark once, did); a path holding NUL is refused.
const slashMark = "\x00"

func markSlashes(r *http.Request) *http.Request {
	esc := r.URL.EscapedPath()
	if !strings.Contains(esc, "%2F") && !strings.Contains(esc, "%2f") {
		return r
	}
	esc = strings.NewReplacer("%2F", "%00", "%2f", "%00").Replace(esc)
	p, err := url.PathUnescape(esc)
	if err != nil {
		return r
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path, r2.URL.RawPath = p, ""
	return r2
}

// trimTrailingSlash makes /api/connections/ the same as /api/connections,
// as RabbitMQ's management API (and the scripts written for it) have it.
func trimTrailingSlash(r *http.Request) *http.Request {
	p := r.URL.Path
	if !strings.HasPrefix(p, "/api/") || len(p) <= len("/api/") || !strings.HasSuffix(p, "/") {
		return r
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = strings.TrimSuffix(p, "/")
	if r2.URL.RawPath != "" {
		r2.URL.RawPath = strings.TrimSuffix(r2.URL.RawPath, "/")
	}
	return r2
}

// escapedPath is r's path as the client sent it, escaped slashes and all,
// for a Location header.
func escapedPath(r *http.Request) string {
	segs := strings.Split(r.URL.Path, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(strings.ReplaceAll(s, slashMark, "/"))
	}
	return strings.Join(segs, "/")
}

// pathValue is r.PathValue with escaped slashes restored.
func pathValue(r *http.Request, key string) string {
	return strings.ReplaceAll(r.PathValue(key), slashMark, "/")
}

// statusProbe records the status a fallback handler would answer.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header         { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *statusProbe) WriteHeader(status int)      { p.status = status }

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, kind, reason string) {
	writeJSON(w, status, api.Error{Kind: kind, Reason: reason})
}

// writeBrokerError maps a broker error to its HTTP status, once.
func writeBrokerError(w http.ResponseWriter, err error) {
	if writeValidationError(w, err) { // schemas.go: 422 with the errors
		return
	}
	status, kind := http.StatusInternalServerError, "internal_error"
	switch broker.CodeOf(err) {
	case broker.NotFound:
		status, kind = http.StatusNotFound, "not_found"
	case broker.AccessRefused, broker.NotAllowed:
		status, kind = http.StatusForbidden, "access_refused"
	case broker.ResourceLocked:
		status, kind = http.StatusConflict, "resource_locked"
	case broker.PreconditionFailed:
		status, kind = http.StatusConflict, "precondition_failed"
	case broker.InvalidArgument, broker.CommandInvalid:
		status, kind = http.StatusBadRequest, "bad_request"
	case broker.NotImplemented:
		status, kind = http.StatusNotImplemented, "not_implemented"
	case broker.ResourceError:
		status, kind = http.StatusServiceUnavailable, "resource_error"
	}
	writeError(w, status, kind, err.Error())
}

// decodeBody reads a JSON body into v; a malformed body is answered 400
// with where it went wrong, and decodeBody returns false.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	raw, err := io.ReadAll(r.Body)
	if err == nil {
		raw, err = lenientBody(raw) // lenient.go
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return false
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		err = dec.Decode(v)
	}
	if err == nil {
		return true
	}
	var (
		syn  *json.SyntaxError
		typ  *json.UnmarshalTypeError
		tooB *http.MaxBytesError
	)
	reason := err.Error()
	switch {
	case errors.As(err, &syn):
		reason = fmt.Sprintf("malformed JSON at byte %d: %v", syn.Offset, err)
	case errors.As(err, &typ):
		reason = fmt.Sprintf("field %q: got a JSON %s, want %s (at byte %d)", typ.Field, typ.Value, typ.Type, typ.Offset)
	case errors.As(err, &tooB):
		writeError(w, http.StatusRequestEntityTooLarge, "bad_request", fmt.Sprintf("body over %d bytes", tooB.Limit))
		return false
	case errors.Is(err, io.EOF):
		reason = "empty body; want a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		reason = "malformed JSON: the body ends in the middle of a value"
	}
	writeError(w, http.StatusBadRequest, "bad_request", reason)
	return false
}
