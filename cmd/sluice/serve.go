package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sluicemq/sluice/internal/amqpserver"
	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/broker"
	"github.com/sluicemq/sluice/internal/httpapi"
	"github.com/sluicemq/sluice/internal/listen"
	"github.com/sluicemq/sluice/internal/resource"
	"github.com/sluicemq/sluice/internal/store"
	"github.com/sluicemq/sluice/internal/store/pebblestore"
)

const serveUsage = `Usage: sluice serve [flags]

Runs the broker until SIGINT or SIGTERM; on either it closes every client
connection with 320 CONNECTION_FORCED and stops. SIGHUP re-reads the TLS
certificate, key and CA files; open connections stay up.

Listen flags (--amqp, --amqps, --http, --https) take comma-separated
addresses; an address without a port gets the protocol's default (5672,
5671, 15672, 15671).

Flags:
%s
Each setting comes from, highest first: the flag, the environment variable,
the config file, the default. Environment variables:
  SLUICE_DATA, SLUICE_AMQP, SLUICE_HTTP, SLUICE_LOG_LEVEL,
  SLUICE_LOG_FORMAT, SLUICE_DISK_FREE_LIMIT, SLUICE_MEMORY_LIMIT,
  SLUICE_MAX_MESSAGE_SIZE, SLUICE_PPROF, SLUICE_LOAD_DEFINITIONS,
  SLUICE_AMQPS, SLUICE_HTTPS, SLUICE_TLS_CERT, SLUICE_TLS_KEY, SLUICE_TLS_CA,
  SLUICE_TLS_CLIENT_AUTH, SLUICE_MAX_CONNECTIONS, SLUICE_PASSWORD_COST,
  SLUICE_CONNECTION_OUTPUT_LIMIT, SLUICE_WRITE_TIMEOUT,
  SLUICE_CONFIG (the config file)

The config file is JSON with any of these keys:
  {
    "data": "./sluice-data",
    "amqp": "127.0.0.1:5672,[::1]:5672",
    "http": "127.0.0.1:15672,[::1]:15672",
    "amqps": "", "https": "", "tls_cert": "", "tls_key": "", "tls_ca": "",
    "tls_client_auth": "none",
    "max_connections": "auto",
    "connection_output_limit": "1MiB",
    "write_timeout": "30s",
    "password_cost": "10",
    "log_level": "info",
    "log_format": "text",
    "disk_free_limit": "1GiB",
    "memory_limit": "40%%",
    "max_message_size": "128MiB",
    "pprof": "",
    "load_definitions": "",
    "node": "",
    "cluster": ""
  }
`

// serveConfig is `sluice serve`'s settings; json tags are the config file keys.
type serveConfig struct {
	Data      string `json:"data"`
	AMQP      string `json:"amqp"`
	HTTP      string `json:"http"`
	LogLevel  string `json:"log_level"`
	LogFormat string `json:"log_format"`
	// DiskFreeLimit and MemoryLimit are the alarm watermarks: a size such
	// as "1GiB" or "512MiB", a memory share such as "40%", or "0" (off).
	DiskFreeLimit string `json:"disk_free_limit"`
	MemoryLimit   string `json:"memory_limit"`
	// MaxMessageSize bounds a published message's body ("128MiB").
	MaxMessageSize string `json:"max_message_size"`
	// Pprof is where Go's profiling endpoints (/debug/pprof/) are served;
	// empty (the default) serves none.
	Pprof string `json:"pprof"`
	// LoadDefinitions is a definitions file (RabbitMQ's format) imported
	// at boot, before the listeners open; empty imports nothing.
	LoadDefinitions string `json:"load_definitions"`
	// Node and Cluster make this node a member of a cluster (cluster.go):
	// its name, and every member as name=host:port (its own entry is its
	// cluster listen address). Empty: a single node.
	Node    string `json:"node"`
	Cluster string `json:"cluster"`
	// AMQPS and HTTPS are the TLS listeners (empty: none); TLSCert,
	// TLSKey, TLSCA and TLSClientAuth their certificate files and whether
	// clients must present a certificate ("none", the default, or "verify").
	AMQPS         string `json:"amqps"`
	HTTPS         string `json:"https"`
	TLSCert       string `json:"tls_cert"`
	TLSKey        string `json:"tls_key"`
	TLSCA         string `json:"tls_ca"`
	TLSClientAuth string `json:"tls_client_auth"`
	// MaxConnections bounds the open AMQP connections: a number, "0" for
	// no bound, or "auto" (and ""): what the file descriptor limit leaves
	// (maxConnections).
	MaxConnections string `json:"max_connections"`
	// ConnectionOutputLimit bounds the bytes held for one AMQP client
	// ("1MiB"); WriteTimeout closes a client that takes less than 64 KiB
	// in that long while there is something to send ("30s").
	ConnectionOutputLimit string `json:"connection_output_limit"`
	WriteTimeout          string `json:"write_timeout"`
	// PasswordCost is the bcrypt cost of new passwords ("": bcrypt's
	// default, 10).
	PasswordCost string `json:"password_cost"`

	// Flags only, for one start: Init creates a data directory that was
	// named explicitly and does not exist; Repair accepts the loss of what
	// follows damage inside the newest write-ahead log; Join starts a node
	// that joins a running cluster (added by `sluice cluster add`).
	Init   bool `json:"-"`
	Repair bool `json:"-"`
	Join   bool `json:"-"`
}

func defaultServeConfig() serveConfig {
	return serveConfig{
		Data:           "./sluice-data",
		AMQP:           "127.0.0.1:5672,[::1]:5672",
		HTTP:           "127.0.0.1:15672,[::1]:15672",
		LogLevel:       "info",
		LogFormat:      "text",
		DiskFreeLimit:  "1GiB",
		MemoryLimit:    "40%",
		MaxMessageSize: "128MiB",
		MaxConnections: "auto",
		// amqpserver.DefaultConfig's.
		ConnectionOutputLimit: "1MiB",
		WriteTimeout:          "30s",
	}
}

// settings lists every setting once: its flag, env variable and field.
func (c *serveConfig) settings() []struct {
	flag, env, help string
	field           *string
} {
	return []struct {
		flag, env, help string
		field           *string
	}{
		{"data", "SLUICE_DATA", "data directory (the default one is created if missing; one named here needs --init)", &c.Data},
		{"amqp", "SLUICE_AMQP", "AMQP listen addresses, comma-separated (a missing IPv6 loopback is skipped)", &c.AMQP},
		{"amqps", "SLUICE_AMQPS", "AMQP over TLS listen addresses (e.g. 0.0.0.0:5671; empty: none)", &c.AMQPS},
		{"http", "SLUICE_HTTP", "HTTP API and /metrics listen addresses (empty: no HTTP)", &c.HTTP},
		{"https", "SLUICE_HTTPS", "HTTP API over TLS listen addresses (empty: none)", &c.HTTPS},
		{"tls-cert", "SLUICE_TLS_CERT", "TLS certificate chain, PEM (re-read on SIGHUP)", &c.TLSCert},
		{"tls-key", "SLUICE_TLS_KEY", "TLS private key, PEM (re-read on SIGHUP)", &c.TLSKey},
		{"tls-ca", "SLUICE_TLS_CA", "CA certificates that sign client certificates, PEM", &c.TLSCA},
		{"tls-client-auth", "SLUICE_TLS_CLIENT_AUTH", "none, or verify: TLS clients must present a certificate --tls-ca signed (SASL EXTERNAL logs in as its CN)", &c.TLSClientAuth},
		{"password-cost", "SLUICE_PASSWORD_COST", "bcrypt cost of new passwords, 4 to 31 (default 10; each step doubles the work of a login)", &c.PasswordCost},
		{"max-connections", "SLUICE_MAX_CONNECTIONS", "most open AMQP connections; one more is refused at connection.open (auto: half of what the file descriptor limit leaves after 2,048 for the store and HTTP; 0: no bound)", &c.MaxConnections},
		{"connection-output-limit", "SLUICE_CONNECTION_OUTPUT_LIMIT", "bytes held for one AMQP client that reads slowly; once reached, its consumers get no more deliveries and its socket is not read until half has drained", &c.ConnectionOutputLimit},
		{"write-timeout", "SLUICE_WRITE_TIMEOUT", "close an AMQP connection whose client takes less than 64 KiB in this long while the broker has something to send; its heartbeats do not keep it open", &c.WriteTimeout},
		{"log-level", "SLUICE_LOG_LEVEL", "log level: debug, info, warn, error", &c.LogLevel},
		{"log-format", "SLUICE_LOG_FORMAT", "log format: text or json", &c.LogFormat},
		{"disk-free-limit", "SLUICE_DISK_FREE_LIMIT", "block publishers while the data directory's disk has less free space (e.g. 1GiB; 0 turns it off)", &c.DiskFreeLimit},
		{"max-message-size", "SLUICE_MAX_MESSAGE_SIZE", "largest message body a publisher may send (e.g. 128MiB, RabbitMQ's default)", &c.MaxMessageSize},
		{"memory-limit", "SLUICE_MEMORY_LIMIT", "block publishers while the broker uses more memory (e.g. 2GiB, or 40% of the machine; 0 turns it off)", &c.MemoryLimit},
		{"load-definitions", "SLUICE_LOAD_DEFINITIONS", "import this definitions file (RabbitMQ's or Sluice's export) at boot", &c.LoadDefinitions},
		{"node", "SLUICE_NODE", "this node's name in --cluster", &c.Node},
		{"cluster", "SLUICE_CLUSTER", "cluster members as n1=host:port,n2=host:port,... (empty: a single node)", &c.Cluster},
		{"pprof", "SLUICE_PPROF", "serve Go's profiling endpoints /debug/pprof/ on this address (empty: off; keep it on localhost)", &c.Pprof},
	}
}

// loadServeConfig merges defaults, config file, environment and flags.
// It returns flag.ErrHelp after printing help.
func loadServeConfig(args []string, lookupEnv func(string) (string, bool), out io.Writer) (serveConfig, error) {
	cfg := defaultServeConfig()
	fs := flag.NewFlagSet("sluice serve", flag.ContinueOnError)
	fs.SetOutput(out)
	flagVals := make(map[string]*string)
	defaults := defaultServeConfig()
	for _, s := range defaults.settings() {
		flagVals[s.flag] = fs.String(s.flag, *s.field, s.help+" (env "+s.env+")")
	}
	configPath := fs.String("config", "", "config file, JSON (env SLUICE_CONFIG)")
	initDir := fs.Bool("init", false, "create the data directory if it does not exist (a new broker)")
	join := fs.Bool("join", false, "join a running cluster that added this node (sluice cluster add); --cluster names at least this node and one member")
	repair := fs.Bool("repair", false, "start even though the newest write-ahead log is damaged mid-file, dropping everything after the damage")
	fs.Usage = func() {
		var b bytes.Buffer
		fs.SetOutput(&b)
		fs.PrintDefaults()
		fs.SetOutput(out)
		fmt.Fprintf(out, serveUsage, b.String())
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}

	path := *configPath
	if path == "" {
		path, _ = lookupEnv("SLUICE_CONFIG")
	}
	if path != "" {
		if err := cfg.readFile(path); err != nil {
			return cfg, err
		}
	}
	cfg.Init, cfg.Repair, cfg.Join = *initDir, *repair, *join
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, s := range cfg.settings() {
		if set[s.flag] {
			*s.field = *flagVals[s.flag]
		} else if v, ok := lookupEnv(s.env); ok {
			*s.field = v
		}
	}
	return cfg, nil
}

func (c *serveConfig) readFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

func newLogger(cfg serveConfig, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", cfg.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch cfg.LogFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", cfg.LogFormat)
}

// serve runs the broker until ctx ends. Shutdown order: the AMQP server
// (every connection closed with 320), then the broker, then the store.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := loadServeConfig(args, os.LookupEnv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "sluice serve: %v\n", err)
		return 2
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "sluice serve: %v\n", err)
		return 2
	}
	// SIGHUP re-reads the TLS files; registered before the broker starts
	// so that a HUP never kills it (the default action).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := runBroker(ctx, cfg, log, hup); err != nil {
		log.Error("sluice stopped", "err", err)
		return 1
	}
	return 0
}

func runBroker(ctx context.Context, cfg serveConfig, log *slog.Logger, hup <-chan os.Signal) error {
	certs, err := tlsSettings(cfg) // listeners.go
	if err != nil {
		return err
	}
	scfg, err := amqpConfig(cfg, log) // limits.go
	if err != nil {
		return err
	}
	if err := prepareDataDir(cfg); err != nil {
		return err
	}
	monCfg, err := monitorConfig(cfg, log)
	if err != nil {
		return err
	}
	sopts := pebblestore.DefaultOptions()
	sopts.Logger = log
	// A backlog lives on disk: the engine's memtable and block cache and
	// the broker's cache of fresh bodies are kept small so that a queue of
	// a million messages stays under 100 MiB of resident memory.
	sopts.MemTableSize = 8 << 20
	sopts.CacheSize = 8 << 20
	sopts.RepairWAL = cfg.Repair
	// A store failure the store meets on its own (a background flush on a
	// full disk) fences the broker, which logs it once and raises the
	// store alarm.
	var fenceTo atomic.Pointer[broker.Broker]
	sopts.OnFence = func(err error) {
		if b := fenceTo.Load(); b != nil {
			b.FenceStore(err)
			return
		}
		log.Error("message store failed while the broker was opening", "err", err)
	}
	st, err := pebblestore.Open(cfg.Data, sopts)
	if err != nil {
		return fmt.Errorf("open data directory %s: %w", cfg.Data, err)
	}
	defer st.Close()

	// The heap is mostly the queues' small index entries (no pointers, so
	// cheap to mark); collecting at 30% growth instead of 100% keeps a large
	// backlog's footprint down at no throughput cost we could measure.
	// GOGC in the environment still wins.
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(30)
	}
	bcfg := broker.DefaultConfig()
	bcfg.Logger = log
	bcfg.BodyCacheBytes = 8 << 20
	if cfg.PasswordCost != "" {
		if bcfg.PasswordCost, err = strconv.Atoi(cfg.PasswordCost); err != nil {
			return fmt.Errorf("--password-cost %q: want a number from 4 to 31", cfg.PasswordCost)
		}
	}
	// Shutdown runs in the reverse order of these steps: HTTP first (so
	// running redrive tasks stop), then AMQP (every connection closed with
	// 320), the monitor, the broker, the cluster host and transport, the
	// store.
	var closers []func(context.Context) error
	var bst store.Store = st
	var cn *clusterNode
	if cfg.Cluster != "" {
		if cn, err = openCluster(cfg.Node, cfg.Cluster, cfg.Join, int64(scfg.MaxMessageSize), st, log); err != nil { // cluster.go
			return fmt.Errorf("open cluster: %w", err)
		}
		closers = append(closers, cn.close)
		bst, bcfg.Cluster, bcfg.Node = cn.store(st), cn, cfg.Node
	}
	b, err := broker.Open(bcfg, bst)
	if err != nil {
		for _, c := range closers {
			c(context.Background())
		}
		return fmt.Errorf("open broker: %w", err)
	}
	fenceTo.Store(b)
	if cn != nil {
		cn.start(b)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		for i := len(closers) - 1; i >= 0; i-- {
			if err := closers[i](sctx); err != nil {
				log.Error("shut down", "err", err)
			}
		}
		log.Info("sluice stopped")
	}()
	closers = append(closers, b.Close)
	if cfg.LoadDefinitions != "" {
		if err := loadDefinitions(cfg.LoadDefinitions, b, log); err != nil { // definitions.go
			return err
		}
	}

	scfg.BodyMemory = monCfg.MemoryLimit // unfinished bodies count against it at once
	// ... and make the memory alarm look as they grow.
	var pokeMonitor atomic.Pointer[resource.Monitor]
	scfg.MemoryPoke = func() {
		if m := pokeMonitor.Load(); m != nil {
			m.Poke()
		}
	}
	srv, err := amqpserver.New(scfg, b)
	if err != nil {
		return err
	}
	b.OnVHostGone(func(vhost string) { httpapi.CloseVHostConnections(srv, vhost) })
	monitor, err := resource.New(monCfg, func(a resource.Alarm) {
		if a.Any() {
			srv.SetBlocked(a.Reason())
		} else {
			srv.SetUnblocked()
		}
	})
	if err != nil {
		return err
	}
	monitor.Start()
	pokeMonitor.Store(monitor)
	closers = append(closers, func(context.Context) error { monitor.Close(); return nil })

	// Each Serve returns once, into served; sized so that none blocks.
	var lns listeners // listeners.go
	defer lns.close()
	if err := lns.openAMQP(cfg, certs, log); err != nil {
		return err
	}
	if err := lns.openHTTP(cfg, certs, log); err != nil {
		return err
	}
	served := make(chan error, len(lns.api()))
	for _, ln := range append(lns.amqp, lns.amqps...) {
		go func() { served <- srv.Serve(ln) }()
	}
	closers = append(closers, srv.Close)

	if cfg.HTTP != "" || cfg.HTTPS != "" {
		hcfg := httpapi.DefaultConfig()
		hcfg.Addr, hcfg.Logger, hcfg.DataDir, hcfg.Version = cfg.HTTP, log, cfg.Data, version
		hcfg.MaxMessageSize = int64(scfg.MaxMessageSize) // an HTTP publish is bounded as an AMQP one
		hcfg.NodeName = nodeName()
		if cfg.Node != "" {
			hcfg.NodeName = cfg.Node
		}
		hcfg.Listeners = lns.api
		hcfg.Node = func() httpapi.NodeStatus {
			st := monitor.Status()
			return httpapi.NodeStatus{MemoryUsed: st.MemoryUsed, MemoryLimit: st.MemoryLimit, MemoryAlarm: st.Memory,
				DiskFree: st.DiskFree, DiskFreeLimit: st.DiskFreeLimit, DiskAlarm: st.Disk}
		}
		hs, err := httpapi.New(hcfg, b, srv)
		if err != nil {
			return err
		}
		closers = append(closers, hs.Close)
		for _, ln := range append(lns.http, lns.https...) {
			go func() { served <- hs.Serve(ln) }()
		}
	}
	if cfg.Pprof != "" {
		stop, err := servePprof(cfg.Pprof, log)
		if err != nil {
			return err
		}
		closers = append(closers, stop)
	}
	log.Info("sluice started", "version", version, "amqp", addrs(lns.amqp), "amqps", addrs(lns.amqps),
		"http", addrs(lns.http), "https", addrs(lns.https), "data", cfg.Data)

	for {
		select {
		case <-ctx.Done():
			log.Info("sluice shutting down")
			return nil
		case err := <-served:
			return fmt.Errorf("listener stopped: %w", err)
		case <-hup:
			reloadCerts(certs, log)
		}
	}
}

// prepareDataDir makes sure the data directory exists. A missing one is
// created only when it is the default ./sluice-data (a first run) or
// --init says so: any other directory that is gone was most likely deleted or not
// mounted, and starting empty there would hand out a fresh guest/guest and
// forget every queue (docs/decisions.md).
func prepareDataDir(cfg serveConfig) error {
	fi, err := os.Stat(cfg.Data)
	switch {
	case err == nil && !fi.IsDir():
		return fmt.Errorf("data directory %s is not a directory", cfg.Data)
	case err == nil:
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("data directory: %w", err)
	case !cfg.Init && cfg.Data != defaultServeConfig().Data:
		return fmt.Errorf("data directory %s does not exist: for a new broker start once with --init to create it; "+
			"if a broker ran here before, its data was moved or deleted (or its disk is not mounted): "+
			"restore it rather than start empty", cfg.Data)
	}
	if err := os.MkdirAll(cfg.Data, 0o750); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	return nil
}

// reloadCerts re-reads the TLS files on SIGHUP; a failure keeps the
// certificates in use.
func reloadCerts(certs *listen.Certs, log *slog.Logger) {
	if certs == nil {
		log.Info("SIGHUP: no TLS listener, nothing to reload")
		return
	}
	if err := certs.Reload(); err != nil {
		log.Error("SIGHUP: TLS files not reloaded; the previous certificates stay in use", "err", err)
		return
	}
	log.Info("SIGHUP: TLS certificates reloaded")
}

// monitorConfig turns the watermark settings into the resource monitor's
// configuration.
func monitorConfig(cfg serveConfig, log *slog.Logger) (resource.Config, error) {
	mc := resource.DefaultConfig(cfg.Data)
	mc.Logger = log
	disk, err := parseSize(cfg.DiskFreeLimit, 0)
	if err != nil {
		return mc, fmt.Errorf("disk free limit: %w", err)
	}
	total, err := resource.TotalMemory()
	if err != nil {
		total = 0
	}
	mem, err := parseSize(cfg.MemoryLimit, total)
	if err != nil {
		return mc, fmt.Errorf("memory limit: %w", err)
	}
	mc.DiskFreeLimit, mc.MemoryLimit = disk, mem
	return mc, nil
}

// parseSize reads "0", "123", "64KiB", "512MiB", "2GiB" (also KB/MB/GB as
// powers of ten), or "N%" of whole when whole is not 0.
func parseSize(s string, whole uint64) (uint64, error) {
	s = strings.TrimSpace(s)
	if pct, ok := strings.CutSuffix(s, "%"); ok {
		if whole == 0 {
			return 0, fmt.Errorf("%q: a percentage is not allowed here", s)
		}
		p, err := strconv.ParseFloat(pct, 64)
		if err != nil || p < 0 || p > 100 {
			return 0, fmt.Errorf("%q: want a percentage from 0 to 100", s)
		}
		return uint64(float64(whole) * p / 100), nil
	}
	units := []struct {
		suffix string
		mult   uint64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
	}
	mult := uint64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: want a size such as 1GiB or 512MiB", s)
	}
	return n * mult, nil
}

// nodeName names this broker as RabbitMQ names its nodes: sluice@ and the
// host's short name.
func nodeName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	host, _, _ = strings.Cut(host, ".")
	return "sluice@" + host
}

// listenerOf describes a listener for the API; addr is a net.Addr or the
// address string it was opened on.
func listenerOf(protocol string, addr any) api.Listener {
	a := fmt.Sprint(addr)
	host, port, _ := net.SplitHostPort(a)
	p, _ := strconv.Atoi(port)
	return api.Listener{Protocol: protocol, IPAddress: host, Port: p}
}
