package redisstore_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore/redistest"
	"github.com/stepup-bridge/stepup-bridge/config"
)

func TestNewClient(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	require.NoError(t, os.WriteFile(notPEM, []byte("not a certificate"), 0o600))
	tests := []struct {
		name    string
		cfg     config.Redis
		want    any    // client type
		wantErr string // substring
	}{
		{name: "one address is standalone", cfg: config.Redis{Addrs: []string{"127.0.0.1:6379"}}, want: &redis.Client{}},
		{name: "several addresses are a cluster", cfg: config.Redis{Addrs: []string{"127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"}}, want: &redis.ClusterClient{}},
		{name: "master name is sentinel", cfg: config.Redis{Addrs: []string{"127.0.0.1:26379", "127.0.0.1:26380"}, MasterName: "mymaster"}, want: &redis.Client{}},
		{name: "no address", cfg: config.Redis{}, wantErr: "no redis address"},
		{name: "missing ca file", cfg: config.Redis{Addrs: []string{"a:1"}, TLS: config.TLS{Enabled: true, CAFile: filepath.Join(dir, "nope.pem")}}, wantErr: "read tls ca_file"},
		{name: "ca file without PEM", cfg: config.Redis{Addrs: []string{"a:1"}, TLS: config.TLS{Enabled: true, CAFile: notPEM}}, wantErr: "holds no PEM certificate"},
		{name: "cert without key", cfg: config.Redis{Addrs: []string{"a:1"}, TLS: config.TLS{Enabled: true, CertFile: notPEM}}, wantErr: "cert_file and key_file go together"},
		{name: "bad client certificate", cfg: config.Redis{Addrs: []string{"a:1"}, TLS: config.TLS{Enabled: true, CertFile: notPEM, KeyFile: notPEM}}, wantErr: "load tls client certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := redisstore.NewClient(tt.cfg)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				assert.Nil(t, c)
				return
			}
			require.NoError(t, err)
			t.Cleanup(func() { _ = c.Close() })
			assert.IsType(t, tt.want, c)
		})
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	_, err := redisstore.New(nil, redisstore.Options{})
	require.Error(t, err)
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = c.Close() })
	_, err = redisstore.New(c, redisstore.Options{Prefix: "a{b}"})
	require.ErrorContains(t, err, "braces")
}

// TestPingRefusesOneClusterNode: one address that is a Cluster node is a
// configuration mistake (most keys would answer MOVED); readiness says so.
func TestPingRefusesOneClusterNode(t *testing.T) {
	seeds := redistest.ClusterAddrs()
	if len(seeds) == 0 {
		t.Skip(redistest.EnvCluster + " is not set: Redis Cluster tier skipped")
	}
	c := redistest.Client(t, seeds[0]) // one address: a standalone client
	s := redistest.Store(t, c, redisstore.Options{})
	err := s.Ping(t.Context())
	require.ErrorContains(t, err, "Redis Cluster node")
	assert.NotErrorIs(t, err, bridge.ErrUnavailable, "a configuration mistake, not an outage")

	ok := redistest.Store(t, redistest.Client(t, redistest.StandaloneAddr()), redisstore.Options{})
	require.NoError(t, ok.Ping(t.Context()))
	require.NoError(t, ok.Ping(t.Context()), "checked once, then plain PING")
}
