package main

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// startServe runs `sluice serve` with args and returns its start-up log
// line and log.
func startServe(t *testing.T, args ...string) (map[string]any, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	exit := make(chan int, 1)
	args = append([]string{"serve", "--password-cost", "4", "--init", "--data", filepath.Join(t.TempDir(), "data"), "--log-format", "json"}, args...)
	go func() { exit <- run(ctx, args, &stdout, &stderr) }()
	t.Cleanup(func() {
		cancel()
		if code := <-exit; code != 0 {
			t.Errorf("serve exited %d:\n%s", code, stderr.String())
		}
	})
	return waitLog(t, &stderr, "sluice started"), &stderr
}

// The TLS listeners (--amqps, --https), and SIGHUP: a connection made
// before the reload stays up, a handshake after it sees the new
// certificate.
func TestServeTLSAndReloadOnSIGHUP(t *testing.T) {
	oldCA, newCA := sluicetest.NewCA(t, "old CA"), sluicetest.NewCA(t, "new CA")
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	c, k := oldCA.Server(t)
	copyFile(t, c, cert)
	copyFile(t, k, key)

	started, logs := startServe(t, "--amqp", "127.0.0.1:0", "--amqps", "127.0.0.1:0", "--http", "", "--https", "127.0.0.1:0",
		"--tls-cert", cert, "--tls-key", key)
	amqps, _ := started["amqps"].(string)
	https, _ := started["https"].(string)
	dial := func(ca *sluicetest.CA) (*amqp091.Connection, error) {
		return amqp091.DialTLS("amqps://guest:guest@"+amqps+"/", &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	}
	before, err := dial(oldCA)
	if err != nil {
		t.Fatalf("dial amqps %s: %v", amqps, err)
	}
	defer before.Close()

	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: oldCA.Pool(), ServerName: "localhost"}}}
	for _, path := range []string{"/api/overview", "/api/health/checks/protocol-listener/amqps", "/api/health/checks/protocol-listener/https"} {
		req, _ := http.NewRequest("GET", "https://"+https+path, nil)
		req.SetBasicAuth("guest", "guest")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET %s over https: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s over https: %d", path, resp.StatusCode)
		}
	}

	c, k = newCA.Server(t)
	copyFile(t, c, cert)
	copyFile(t, k, key)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, logs, "SIGHUP: TLS certificates reloaded")

	if _, err := dial(oldCA); err == nil {
		t.Error("a handshake after the reload still got the old certificate")
	}
	after, err := dial(newCA)
	if err != nil {
		t.Fatalf("dial with the new CA after the reload: %v", err)
	}
	defer after.Close()
	ch, err := before.Channel()
	if err != nil {
		t.Fatalf("the connection made before the reload was dropped: %v", err)
	}
	if _, err := ch.QueueDeclare("", false, true, true, false, nil); err != nil {
		t.Errorf("the connection made before the reload: %v", err)
	}
}

// Listen flags take lists; the IPv6 loopback is skipped where the
// machine lacks it.
func TestServeListensOnEveryAddressOfTheList(t *testing.T) {
	started, _ := startServe(t, "--amqp", "127.0.0.1:0,[::1]:0", "--http", "")
	list, _ := started["amqp"].(string)
	addrs := strings.Split(list, ",")
	if len(addrs) == 0 || !strings.HasPrefix(addrs[0], "127.0.0.1:") {
		t.Fatalf("amqp listeners %q", list)
	}
	for _, a := range addrs {
		conn, err := amqp091.Dial("amqp://guest:guest@" + a + "/")
		if err != nil {
			t.Errorf("dial %s: %v", a, err)
			continue
		}
		conn.Close()
	}
	if ln, err := net.Listen("tcp", "[::1]:0"); err == nil {
		ln.Close()
		if len(addrs) != 2 {
			t.Errorf("this machine has ::1 but the broker listens on %q only", list)
		}
	}
}

func TestServeNamesTheFlagOfAPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stdout, stderr syncBuffer
	code := run(context.Background(), []string{"serve", "--password-cost", "4", "--init", "--data", filepath.Join(t.TempDir(), "d"), "--amqp", ln.Addr().String(), "--http", ""}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "--amqp "+ln.Addr().String()+": the address is in use") {
		t.Errorf("exit %d, log:\n%s", code, stderr.String())
	}
}
