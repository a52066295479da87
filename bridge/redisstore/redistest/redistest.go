// Package redistest is for tests that need a real Redis: the shared
// standalone server, the Redis Cluster tier, isolated key prefixes that are
// cleaned up afterwards, and throwaway redis-server processes a test may
// stop and start again (outages, multi-process tests).
//
// Environment:
//
//	STEPUP_REDIS_ADDR     standalone Redis (default 127.0.0.1:6379)
//	STEPUP_REDIS_CLUSTER  comma-separated seeds of a Redis Cluster; the
//	                      cluster tier is skipped when unset
//	                      (deploy/redis-cluster/cluster.sh start; addrs)
//
// bash deploy/test.sh prepares both.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// Environment variables the helpers read.
const (
	EnvAddr    = "STEPUP_REDIS_ADDR"
	EnvCluster = "STEPUP_REDIS_CLUSTER"
)

// StandaloneAddr is the standalone Redis the tests use.
func StandaloneAddr() string {
	if a := strings.TrimSpace(os.Getenv(EnvAddr)); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// ClusterAddrs are the Cluster seeds from STEPUP_REDIS_CLUSTER (nil when
// unset).
func ClusterAddrs() []string {
	var out []string
	for _, a := range strings.Split(os.Getenv(EnvCluster), ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// Target is one Redis deployment a test runs against.
type Target struct {
	Name  string   // "standalone" or "cluster"
	Addrs []string // empty: the tier is not configured (see Skip)
	Skip  string   // why the tier is skipped, when it is
}

// Targets are the deployments every Redis test runs on: the standalone
// server always, the Cluster when STEPUP_REDIS_CLUSTER is set.
func Targets() []Target {
	ts := []Target{{Name: "standalone", Addrs: []string{StandaloneAddr()}}}
	if c := ClusterAddrs(); len(c) > 0 {
		ts = append(ts, Target{Name: "cluster", Addrs: c})
	} else {
		ts = append(ts, Target{Name: "cluster", Skip: EnvCluster + " is not set: Redis Cluster tier skipped (bash deploy/test.sh sets it; or deploy/redis-cluster/cluster.sh start and export " + EnvCluster + "=$(deploy/redis-cluster/cluster.sh addrs))"})
	}
	return ts
}

// Client connects to addrs the way the service does (redisstore.NewClient:
// one address standalone, several a Cluster), checks every server answers
// and closes the client when the test ends. An unreachable server fails the
// test: the README's test command starts one.
func Client(t testing.TB, addrs ...string) redis.UniversalClient {
	t.Helper()
	return ClientFor(t, config.Redis{Addrs: addrs})
}

// ClientFor is Client for a whole store.redis configuration (e.g. with a
// Sentinel master_name).
func ClientFor(t testing.TB, cfg config.Redis) redis.UniversalClient {
	t.Helper()
	addrs := cfg.Addrs
	c, err := redisstore.NewClient(cfg)
	if err != nil {
		t.Fatalf("redis client for %v: %v", addrs, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := forEachServer(ctx, c, func(ctx context.Context, n *redis.Client) error { return n.Ping(ctx).Err() }); err != nil {
		hint := "set " + EnvAddr
		if len(addrs) > 1 {
			hint = "deploy/redis-cluster/cluster.sh start, or set " + EnvCluster
		}
		t.Fatalf("redis at %v does not answer (run the tests with bash deploy/test.sh, or %s): %v", addrs, hint, err)
	}
	if cc, ok := c.(*redis.ClusterClient); ok {
		// A cluster that is still forming answers PING but refuses commands.
		waitClusterOK(t, ctx, cc)
	}
	return c
}

func waitClusterOK(t testing.TB, ctx context.Context, cc *redis.ClusterClient) {
	t.Helper()
	for {
		err := cc.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error {
			info, err := n.ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return errClusterNotOK
			}
			return nil
		})
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("redis cluster not ok: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

type constErr string

func (e constErr) Error() string { return string(e) }

const errClusterNotOK = constErr("cluster_state is not ok")

// forEachServer runs fn on the standalone server or on each Cluster master.
func forEachServer(ctx context.Context, c redis.UniversalClient, fn func(context.Context, *redis.Client) error) error {
	switch c := c.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, fn)
	case *redis.Client:
		return fn(ctx, c)
	default:
		return constErr("unsupported redis client type")
	}
}

// Prefix returns a key prefix no other test uses and deletes every key
// under it when the test ends (SCAN: fine in tests, never on hot paths).
func Prefix(t testing.TB, c redis.UniversalClient) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	p := "stepup-test-" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := DeletePrefix(ctx, c, p); err != nil {
			t.Logf("cleanup of redis keys %s:*: %v", p, err)
		}
	})
	return p
}

// Keys lists every key under prefix (on every Cluster master).
func Keys(ctx context.Context, c redis.UniversalClient, prefix string) ([]string, error) {
	var mu sync.Mutex
	var out []string
	err := forEachServer(ctx, c, func(ctx context.Context, n *redis.Client) error {
		it := n.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for it.Next(ctx) {
			mu.Lock()
			out = append(out, it.Val())
			mu.Unlock()
		}
		return it.Err()
	})
	return out, err
}

// DeletePrefix deletes every key under prefix.
func DeletePrefix(ctx context.Context, c redis.UniversalClient, prefix string) error {
	keys, err := Keys(ctx, c, prefix)
	if err != nil {
		return err
	}
	for _, k := range keys {
		// One key per DEL: on a Cluster the keys are in many slots.
		if err := c.Del(ctx, k).Err(); err != nil {
			return err
		}
	}
	return nil
}

// Store builds a redisstore.Store on c under a fresh prefix (set in opts
// unless the caller chose one). Zero options take the store's defaults.
func Store(t testing.TB, c redis.UniversalClient, opts redisstore.Options) *redisstore.Store {
	t.Helper()
	if opts.Prefix == "" {
		opts.Prefix = Prefix(t, c)
	}
	if opts.Clock == nil {
		opts.Clock = bridge.SystemClock{}
	}
	s, err := redisstore.New(c, opts)
	if err != nil {
		t.Fatalf("redisstore.New: %v", err)
	}
	return s
}
