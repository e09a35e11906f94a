package httpapi

// Exchange-to-exchange bindings (/api/bindings/{vhost}/e/{src}/e/{dst})
// and an exchange's bindings (/api/exchanges/{vhost}/{name}/bindings/
// source|destination), as RabbitMQ's management API has them. The
// handlers of topology.go serve both kinds of destination; bindingDest
// tells them which one the path names.

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/sluicemq/sluice/internal/broker"
)

func (s *Server) routeBindings() {
	s.route("GET /api/bindings/{vhost}/e/{exchange}/e/{dest}", needMonitoringOrManagement, s.listQueueBindings)
	s.route("POST /api/bindings/{vhost}/e/{exchange}/e/{dest}", needManagement, s.bindQueue)
	s.route("DELETE /api/bindings/{vhost}/e/{exchange}/e/{dest}/{props}", needManagement, s.unbindQueue)
	s.route("GET /api/bindings/{vhost}/e/{exchange}/q/{queue}/{props}", needMonitoringOrManagement, s.getBinding)
	s.route("GET /api/bindings/{vhost}/e/{exchange}/e/{dest}/{props}", needMonitoringOrManagement, s.getBinding)
	s.route("GET /api/exchanges/{vhost}/{name}/bindings/source", needMonitoringOrManagement, s.exchangeBindings)
	s.route("GET /api/exchanges/{vhost}/{name}/bindings/destination", needMonitoringOrManagement, s.exchangeBindings)
}

// bindingDest returns the destination a binding path names and its kind,
// "queue" or "exchange" (a BindingInfo's DestinationType).
func bindingDest(r *http.Request) (name, kind string) {
	if strings.Contains(r.Pattern, "/e/{dest}") {
		return exchangeName(r, "dest"), "exchange"
	}
	return pathValue(r, "queue"), "queue"
}

// destExists answers NotFound for a missing destination.
func (s *Server) destExists(vh, name, kind string) error {
	if kind == "exchange" {
		_, err := s.b.Exchange(vh, name)
		return err
	}
	_, err := s.b.Queue(vh, name)
	return err
}

// getBinding is GET of one binding by its properties key.
func (s *Server) getBinding(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	x, props := exchangeName(r, "exchange"), pathValue(r, "props")
	dst, kind := bindingDest(r)
	out, err := s.bindings(vh, u, func(b broker.BindingInfo) bool {
		return b.Source == x && b.DestinationType == kind && b.Destination == dst && propsMatch(b, props)
	})
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	if len(out) == 0 {
		writeError(w, http.StatusNotFound, "not_found", "no binding '"+props+"' from exchange '"+x+"' to "+kind+" '"+dst+"' in vhost '"+vh+"'")
		return
	}
	writeJSON(w, http.StatusOK, out[0])
}

// exchangeBindings lists the bindings whose source (…/bindings/source) or
// destination (…/bindings/destination) is the exchange.
func (s *Server) exchangeBindings(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	name := exchangeName(r, "name")
	if _, err := s.b.Exchange(vh, name); err != nil {
		writeBrokerError(w, err)
		return
	}
	asSource := strings.HasSuffix(r.Pattern, "/source")
	s.writeBindings(w, r, u, vh, func(b broker.BindingInfo) bool {
		if asSource {
			return b.Source == name
		}
		return b.DestinationType == "exchange" && b.Destination == name
	})
}

// propsMatch reports whether props names binding b: Sluice's properties
// key, or, for a binding without arguments, RabbitMQ's (the routing key
// escaped as a query value, "~" as %7E: "#" is "%23"), so a key computed
// the RabbitMQ way finds the binding too.
func propsMatch(b broker.BindingInfo, props string) bool {
	if propertiesKey(b.RoutingKey, b.Args) == props {
		return true
	}
	return len(b.Args) == 0 && b.RoutingKey != "" && rabbitPropertiesKey(b.RoutingKey) == props
}

func rabbitPropertiesKey(key string) string {
	var sb strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
			sb.WriteByte(c)
		case c == ' ':
			sb.WriteByte('+')
		default:
			fmt.Fprintf(&sb, "%%%02X", c)
		}
	}
	return sb.String()
}
