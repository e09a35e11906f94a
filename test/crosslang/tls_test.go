//go:build integration

package crosslang

import (
	"net"
	"os"
	"strings"
	"testing"

	"github.com/sluicemq/sluice/internal/broker"
	"github.com/sluicemq/sluice/internal/listen"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

// pika over TLS: PLAIN with a server certificate of a CA made here, and
// mutual TLS with SASL EXTERNAL (the certificate's CN is the user).
func TestPikaOverTLS(t *testing.T) {
	if os.Getenv("SLUICE_TEST_AMQP_URL") != "" {
		t.Skip("starts its own Sluice with TLS; SLUICE_TEST_AMQP_URL names another broker")
	}
	interp := python(t)
	ca := sluicetest.NewCA(t, "crosslang CA")
	cert, key := ca.Server(t)
	certs, err := listen.LoadCerts(listen.TLSConfig{CertFile: cert, KeyFile: key, CAFile: ca.CertFile, ClientAuth: "none"})
	if err != nil {
		t.Fatal(err)
	}
	b := sluicetest.Start(t, sluicetest.WithTLS(certs.ServerConfig()))
	if _, err := b.Broker.PutUser("pika-client", "", "", nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Broker.SetPermission(broker.Permission{User: "pika-client", VHost: "/", Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
		t.Fatal(err)
	}
	clientCert, clientKey := ca.Client(t, "pika-client")
	_, port, _ := net.SplitHostPort(b.TLSAddr())
	out, err := runScriptEnv(t, interp, "tls.py", "AMQPS_HOST=127.0.0.1", "AMQPS_PORT="+port, "TLS_CA="+ca.CertFile,
		"TLS_CLIENT_CERT="+clientCert, "TLS_CLIENT_KEY="+clientKey)
	t.Logf("%s tls.py:\n%s", interp, out)
	if err != nil {
		t.Fatalf("tls.py: %v", err)
	}
	if !strings.Contains(out, "tls.py: PASS\n") || !strings.Contains(out, "EXTERNAL: published") {
		t.Fatal("tls.py exited 0 without its PASS line")
	}
}
