package cli

import (
	"flag"
	"net/http"
	"strings"

	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/listen"
)

// globals are the flags every command takes. They may stand anywhere on
// the line, before the command too ("sluice --server h:15672 queue ls").
type globals struct {
	server, user, password, tlsCA *string
	insecure                      *bool
}

// globalNames are the global flags; true marks a boolean one (no value).
var globalNames = map[string]bool{
	"server": false, "user": false, "password": false, "vhost": false,
	"tls-ca": false, "json": true, "insecure": true,
}

func globalFlags(fs *flag.FlagSet, e *env) globals {
	g := globals{
		server:   fs.String("server", envOr("SLUICE_SERVER", "http://127.0.0.1:15672"), "the broker's HTTP API `URL`; host:port alone means http:// (env SLUICE_SERVER)"),
		user:     fs.String("user", envOr("SLUICE_USER", "guest"), "user name (env SLUICE_USER)"),
		password: fs.String("password", envOr("SLUICE_PASSWORD", "guest"), "password (env SLUICE_PASSWORD)"),
		tlsCA:    fs.String("tls-ca", envOr("SLUICE_TLS_CA", ""), "CA certificate `file` (PEM) that signed an https server's certificate (env SLUICE_TLS_CA)"),
		insecure: fs.Bool("insecure", false, "do not verify an https server's certificate"),
	}
	fs.StringVar(&e.vhost, "vhost", "/", "virtual host")
	fs.BoolVar(&e.json, "json", false, "print JSON instead of a table")
	return g
}

// client returns the API client for server, speaking TLS as the flags say.
func (g globals) client(server string) (*api.Client, error) {
	c := api.NewClient(server, *g.user, *g.password)
	if *g.tlsCA == "" && !*g.insecure {
		return c, nil
	}
	conf, err := listen.ClientConfig(*g.tlsCA, "", "", *g.insecure)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = conf
	c.HTTP = &http.Client{Transport: tr}
	return c, nil
}

// serverURL adds http:// to a --server given as host:port.
func serverURL(s string) string {
	if strings.Contains(s, "://") {
		return s
	}
	return "http://" + s
}

// hoistGlobals takes the global flags (with their values) out of args,
// wherever they stand before a "--", and returns the rest and them.
func hoistGlobals(args []string) (rest, flags []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		if !strings.HasPrefix(a, "-") {
			rest = append(rest, a)
			continue
		}
		base, _, inline := strings.Cut(strings.TrimLeft(a, "-"), "=")
		isBool, global := globalNames[base]
		if !global {
			rest = append(rest, a)
			continue
		}
		flags = append(flags, a)
		if !isBool && !inline && i+1 < len(args) {
			flags = append(flags, args[i+1])
			i++
		}
	}
	return rest, flags
}
