//go:build integration

package bench_test

import (
	"io"
	"testing"

	"github.com/sluicemq/sluice/internal/bench"
	"github.com/sluicemq/sluice/internal/listen"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

// sluice bench speaks amqps://, with both clients, trusting --tls-ca.
func TestBenchOverTLS(t *testing.T) {
	ca := sluicetest.NewCA(t, "bench CA")
	cert, key := ca.Server(t)
	certs, err := listen.LoadCerts(listen.TLSConfig{CertFile: cert, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	b := sluicetest.Start(t, sluicetest.WithTLS(certs.ServerConfig()))
	url := "amqps://guest:guest@localhost:" + b.TLSAddr()[len("127.0.0.1:"):] + "/"
	for _, client := range []string{bench.ClientAMQP091, bench.ClientBatching} {
		t.Run(client, func(t *testing.T) {
			c := tiny(url, bench.ScenarioPublish, "bench.tls."+client)
			c.Client, c.TLSCA, c.Messages, c.JSON = client, ca.CertFile, 500, true
			r, err := bench.Run(t.Context(), c, io.Discard)
			if err != nil {
				t.Fatalf("bench over TLS: %v", err)
			}
			if p := onePhase(t, r, "publish"); p.Confirmed != 500 {
				t.Errorf("publish phase %+v, want 500 confirmed", p)
			}
		})
	}
	c := tiny(url, bench.ScenarioPublish, "bench.tls.untrusted")
	c.Messages, c.JSON = 10, true
	if _, err := bench.Run(t.Context(), c, io.Discard); err == nil {
		t.Error("bench trusted a certificate of an unknown CA")
	}
}
