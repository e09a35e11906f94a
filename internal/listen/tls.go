package listen

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
)

// TLSConfig names the files of the broker's TLS setup.
type TLSConfig struct {
	CertFile, KeyFile string
	// CAFile holds the certificates that sign client certificates
	// (PEM); empty: the system's roots.
	CAFile string
	// ClientAuth is "none" (no client certificate asked for) or "verify"
	// (mutual TLS: a client must present a certificate CAFile signed).
	ClientAuth string
}

// Validate reports settings that cannot work.
func (c TLSConfig) Validate() error {
	var errs []error
	if c.CertFile == "" || c.KeyFile == "" {
		errs = append(errs, errors.New("--tls-cert and --tls-key are both needed"))
	}
	switch c.ClientAuth {
	case "", "none":
	case "verify":
		if c.CAFile == "" {
			errs = append(errs, errors.New("--tls-client-auth verify needs --tls-ca"))
		}
	default:
		errs = append(errs, fmt.Errorf("--tls-client-auth %q: want none or verify", c.ClientAuth))
	}
	return errors.Join(errs...)
}

// Certs is the broker's TLS material, re-read by Reload (on SIGHUP).
// Connections keep the certificate they were made with; handshakes after
// a Reload see the new files.
type Certs struct {
	cfg     TLSConfig
	current atomic.Pointer[tls.Config]
}

// LoadCerts reads the files of cfg.
func LoadCerts(cfg TLSConfig) (*Certs, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Certs{cfg: cfg}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload reads the files again. On an error the previous certificates
// stay in use.
func (c *Certs) Reload() error {
	cert, err := tls.LoadX509KeyPair(c.cfg.CertFile, c.cfg.KeyFile)
	if err != nil {
		return fmt.Errorf("load --tls-cert %s and --tls-key %s: %w", c.cfg.CertFile, c.cfg.KeyFile, err)
	}
	conf := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}
	if c.cfg.CAFile != "" {
		pool, err := readPool(c.cfg.CAFile)
		if err != nil {
			return fmt.Errorf("--tls-ca: %w", err)
		}
		conf.ClientCAs = pool
		conf.ClientAuth = tls.VerifyClientCertIfGiven
	}
	if c.cfg.ClientAuth == "verify" {
		conf.ClientAuth = tls.RequireAndVerifyClientCert
	}
	c.current.Store(conf)
	return nil
}

// ServerConfig returns the tls.Config for a listener: each handshake
// takes the certificates of the latest Reload.
func (c *Certs) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return c.current.Load(), nil
		},
	}
}

// ClientConfig builds a client's TLS settings: caFile ("" for the
// system's roots) verifies the server, certFile and keyFile (optional)
// are the client's own certificate, and insecure skips verification.
func ClientConfig(caFile, certFile, keyFile string, insecure bool) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure}
	if caFile != "" {
		pool, err := readPool(caFile)
		if err != nil {
			return nil, err
		}
		conf.RootCAs = pool
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

// readPool reads a PEM file of CA certificates.
func readPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", file)
	}
	return pool, nil
}
