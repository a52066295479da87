package redisstore

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stepup-bridge/stepup-bridge/config"
)

// Client defaults when the configuration leaves a value at zero.
const (
	defaultDialTimeout = 2 * time.Second
	defaultIOTimeout   = 2 * time.Second
)

// NewClient builds the go-redis client for cfg: one address is a standalone
// server, several are the seeds of a Cluster, and a master_name makes the
// addresses Sentinels. TLS always verifies the server (system roots or
// ca_file; cert_file/key_file for client certificates).
//
// Commands are not retried by the client: a script whose reply was lost may
// have run, and running it twice is not always harmless (a second link
// issued, a consumed ticket refused). Failures surface as
// bridge.ErrUnavailable instead, and the caller (the platform, the browser,
// the outbox worker) retries the whole operation, which event-id dedupe
// makes safe. Dialling is retried once, quickly: nothing was sent.
func NewClient(cfg config.Redis) (redis.UniversalClient, error) {
	if len(cfg.Addrs) == 0 {
		return nil, errors.New("redisstore: no redis address configured")
	}
	opts := &redis.UniversalOptions{
		Addrs:                 cfg.Addrs,
		MasterName:            cfg.MasterName,
		Username:              cfg.Username,
		Password:              cfg.Password.Value,
		DB:                    cfg.DB,
		ClientName:            "stepup-bridge",
		PoolSize:              cfg.PoolSize,
		DialTimeout:           orDefault(cfg.DialTimeout, defaultDialTimeout),
		ReadTimeout:           orDefault(cfg.ReadTimeout, defaultIOTimeout),
		WriteTimeout:          orDefault(cfg.WriteTimeout, defaultIOTimeout),
		ContextTimeoutEnabled: true,
		MaxRetries:            -1, // see above
		DialerRetries:         2,
		DialerRetryTimeout:    50 * time.Millisecond,
	}
	if cfg.MasterName != "" && cfg.Password.Value != "" {
		// Sentinels commonly share the data nodes' credentials.
		opts.SentinelUsername = cfg.Username
		opts.SentinelPassword = cfg.Password.Value
	}
	if cfg.TLS.Enabled {
		tc, err := tlsConfig(cfg.TLS)
		if err != nil {
			return nil, err
		}
		opts.TLSConfig = tc
	}
	return redis.NewUniversalClient(opts), nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// tlsConfig builds a verifying TLS configuration. There is deliberately no
// way to skip verification.
func tlsConfig(c config.TLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("redisstore: read tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redisstore: tls ca_file %s holds no PEM certificate", c.CAFile)
		}
		tc.RootCAs = pool
	}
	switch {
	case c.CertFile != "" && c.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("redisstore: load tls client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	case c.CertFile != "" || c.KeyFile != "":
		return nil, errors.New("redisstore: tls cert_file and key_file go together")
	}
	return tc, nil
}
