package amqpserver_test

import (
	"crypto/tls"
	"testing"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/sluicemq/sluice/internal/broker"
	"github.com/sluicemq/sluice/internal/listen"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

// startTLS starts a broker with a TLS listener whose certificate ca
// signed; with clientAuth "verify" clients need a certificate of ca too.
func startTLS(t *testing.T, clientAuth string) (*sluicetest.Broker, *sluicetest.CA) {
	t.Helper()
	ca := sluicetest.NewCA(t, "test CA")
	cert, key := ca.Server(t)
	certs, err := listen.LoadCerts(listen.TLSConfig{CertFile: cert, KeyFile: key, CAFile: ca.CertFile, ClientAuth: clientAuth})
	if err != nil {
		t.Fatal(err)
	}
	return sluicetest.Start(t, sluicetest.WithTLS(certs.ServerConfig())), ca
}

func roundTrip(t *testing.T, conn *amqp091.Connection) {
	t.Helper()
	ch := sluicetest.Channel(t, conn)
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Publish("", q.Name, false, false, amqp091.Publishing{Body: []byte("over tls")}); err != nil {
		t.Fatal(err)
	}
	msgs, err := ch.Consume(q.Name, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(recv(t, msgs).Body); got != "over tls" {
		t.Errorf("got %q", got)
	}
}

func TestTLSRoundTrip(t *testing.T) {
	b, ca := startTLS(t, "none")
	conn, err := amqp091.DialTLS("amqps://guest:guest@"+b.TLSAddr()+"/", &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	if err != nil {
		t.Fatalf("dial amqps: %v", err)
	}
	defer conn.Close()
	if st := conn.ConnectionState(); st.Version < tls.VersionTLS12 {
		t.Errorf("TLS version %x, want 1.2 or later", st.Version)
	}
	roundTrip(t, conn)
}

func TestTLSRefusesOldVersions(t *testing.T) {
	b, ca := startTLS(t, "none")
	_, err := amqp091.DialTLS("amqps://guest:guest@"+b.TLSAddr()+"/",
		&tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err == nil {
		t.Fatal("a TLS 1.1 client connected; want TLS 1.2 at least")
	}
}

// RabbitMQ's rabbitmq_auth_mechanism_ssl: with SASL EXTERNAL the user is
// the client certificate's common name, no password asked.
func TestTLSExternalLogsInAsTheCertificateCN(t *testing.T) {
	b, ca := startTLS(t, "verify")
	if _, err := b.Broker.PutUser("orders-service", "", "", nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Broker.SetPermission(broker.Permission{User: "orders-service", VHost: "/", Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
		t.Fatal(err)
	}
	conf := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{ca.ClientCert(t, "orders-service")}}
	conn, err := amqp091.DialTLS_ExternalAuth("amqps://"+b.TLSAddr()+"/", conf)
	if err != nil {
		t.Fatalf("dial with EXTERNAL: %v", err)
	}
	defer conn.Close()
	roundTrip(t, conn)
	conns := b.Server.Connections()
	if len(conns) != 1 || conns[0].Info().User != "orders-service" {
		t.Errorf("connections %v, want one of user orders-service", conns)
	}

	t.Run("unknown CN refused", func(t *testing.T) {
		conf := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{ca.ClientCert(t, "nobody")}}
		_, err := amqp091.DialTLS_ExternalAuth("amqps://"+b.TLSAddr()+"/", conf)
		wantAMQPError(t, err, amqp091.AccessRefused)
	})
	t.Run("no client certificate refused", func(t *testing.T) {
		_, err := amqp091.DialTLS("amqps://guest:guest@"+b.TLSAddr()+"/", &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
		if err == nil {
			t.Fatal("connected without a client certificate under --tls-client-auth verify")
		}
	})
	t.Run("plain listener offers no EXTERNAL", func(t *testing.T) {
		_, err := amqp091.DialConfig("amqp://"+b.Addr()+"/", amqp091.Config{SASL: []amqp091.Authentication{&amqp091.ExternalAuth{}}})
		if err == nil {
			t.Fatal("EXTERNAL accepted without TLS")
		}
	})
}
