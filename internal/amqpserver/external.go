package amqpserver

import (
	"crypto/tls"
	"errors"
	"net"

	"github.com/sluicemq/sluice/internal/broker"
)

// SASL EXTERNAL over mutual TLS, as RabbitMQ's rabbitmq_auth_mechanism_ssl
// plugin with its default: the user is the common name of the client's
// verified certificate, and no password is asked for.

// mechanisms lists the SASL mechanisms connection.start offers:
// EXTERNAL only on a TLS connection whose client certificate verified.
func (c *conn) mechanisms() string {
	if c.peerCN != "" {
		return "PLAIN AMQPLAIN EXTERNAL"
	}
	return "PLAIN AMQPLAIN"
}

// startOkExternal logs in the certificate's common name.
func (c *conn) startOkExternal(failureClose bool) error {
	if c.peerCN == "" {
		return c.loginRefused("", "EXTERNAL", failureClose, errors.New("no verified TLS client certificate"))
	}
	login := broker.Login{Door: "amqp", Remote: c.nc.RemoteAddr().String(), User: c.peerCN}
	if err := c.srv.broker.AuthenticateExternal(login); err != nil {
		return c.loginRefused(c.peerCN, "EXTERNAL", failureClose, err)
	}
	c.loggedIn(c.peerCN)
	return nil
}

func isTLS(nc net.Conn) bool {
	_, ok := nc.(*tls.Conn)
	return ok
}

// peerCommonName returns the common name of nc's verified client
// certificate, or "" (not TLS, no certificate, or one not verified).
func peerCommonName(nc net.Conn) string {
	tc, ok := nc.(*tls.Conn)
	if !ok {
		return ""
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return ""
	}
	return st.PeerCertificates[0].Subject.CommonName
}
