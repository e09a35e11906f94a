package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/listen"
)

// listeners are the sockets `sluice serve` accepts on, by protocol as
// RabbitMQ names its listeners.
type listeners struct {
	amqp, amqps, http, https []net.Listener
}

// tlsSettings returns the broker's TLS material, or nil when neither
// --amqps nor --https is set.
func tlsSettings(cfg serveConfig) (*listen.Certs, error) {
	if cfg.AMQPS == "" && cfg.HTTPS == "" {
		if cfg.TLSCert != "" || cfg.TLSKey != "" {
			return nil, fmt.Errorf("--tls-cert and --tls-key are set but no TLS listener is: add --amqps or --https")
		}
		return nil, nil
	}
	return listen.LoadCerts(listen.TLSConfig{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey, CAFile: cfg.TLSCA, ClientAuth: cfg.TLSClientAuth})
}

// openAMQP opens the --amqp and --amqps listeners.
func (l *listeners) openAMQP(cfg serveConfig, certs *listen.Certs, log *slog.Logger) error {
	var err error
	if l.amqp, err = listen.Open("amqp", cfg.AMQP, "5672", log); err != nil {
		return err
	}
	if cfg.AMQPS != "" {
		if l.amqps, err = openTLS("amqps", cfg.AMQPS, "5671", certs, log); err != nil {
			return err
		}
	}
	return nil
}

// openHTTP opens the --http and --https listeners.
func (l *listeners) openHTTP(cfg serveConfig, certs *listen.Certs, log *slog.Logger) error {
	var err error
	if cfg.HTTP != "" {
		if l.http, err = listen.Open("http", cfg.HTTP, "15672", log); err != nil {
			return err
		}
	}
	if cfg.HTTPS != "" {
		if l.https, err = openTLS("https", cfg.HTTPS, "15671", certs, log); err != nil {
			return err
		}
	}
	return nil
}

func openTLS(flag, list, port string, certs *listen.Certs, log *slog.Logger) ([]net.Listener, error) {
	lns, err := listen.Open(flag, list, port, log)
	if err != nil {
		return nil, err
	}
	for i, ln := range lns {
		lns[i] = tls.NewListener(ln, certs.ServerConfig())
	}
	return lns, nil
}

// close closes every listener (those Serve took are closed twice, which
// is harmless); for an error while opening the others.
func (l *listeners) close() {
	for _, lns := range [][]net.Listener{l.amqp, l.amqps, l.http, l.https} {
		listen.Close(lns)
	}
}

// api lists the listeners for the HTTP API (/api/overview, health checks).
func (l *listeners) api() []api.Listener {
	var out []api.Listener
	for _, p := range []struct {
		protocol string
		lns      []net.Listener
	}{{"amqp", l.amqp}, {"amqp/ssl", l.amqps}, {"http", l.http}, {"https", l.https}} {
		for _, ln := range p.lns {
			out = append(out, listenerOf(p.protocol, ln.Addr()))
		}
	}
	return out
}

// addrs joins the listeners' addresses for the start-up log line.
func addrs(lns []net.Listener) string {
	s := make([]string, len(lns))
	for i, ln := range lns {
		s[i] = ln.Addr().String()
	}
	return strings.Join(s, ",")
}
