package redisstore_test

import (
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore/redistest"
	"github.com/stepup-bridge/stepup-bridge/bridge/storetest"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// TestContract runs the store contract on standalone Redis and, when
// STEPUP_REDIS_CLUSTER is set, on Redis Cluster.
func TestContract(t *testing.T) {
	for _, target := range redistest.Targets() {
		t.Run(target.Name, func(t *testing.T) {
			if target.Skip != "" {
				t.Skip(target.Skip)
			}
			c := redistest.Client(t, target.Addrs...)
			storetest.Run(t, func(t *testing.T, clock bridge.Clock, o storetest.Options) bridge.Store {
				return redistest.Store(t, c, redisstore.Options{
					Clock: clock, SessionTTL: o.SessionTTL, DedupeTTL: o.DedupeTTL, ClaimTimeout: o.ClaimTimeout,
				})
			})
		})
	}
}

// TestContractSentinel runs the contract through a Sentinel (addrs = the
// Sentinel, master_name set), on private processes: skipped with -short.
func TestContractSentinel(t *testing.T) {
	master := redistest.StartServer(t)
	sentinel := redistest.StartSentinel(t, master, "stepup-master")
	c := redistest.ClientFor(t, config.Redis{Addrs: []string{sentinel.Addr}, MasterName: "stepup-master"})
	storetest.Run(t, func(t *testing.T, clock bridge.Clock, o storetest.Options) bridge.Store {
		return redistest.Store(t, c, redisstore.Options{
			Clock: clock, SessionTTL: o.SessionTTL, DedupeTTL: o.DedupeTTL, ClaimTimeout: o.ClaimTimeout,
		})
	})
	// The scripts ran on the master the Sentinel named.
	mc := redis.NewClient(&redis.Options{Addr: master.Addr})
	defer mc.Close()
	stats, err := mc.Info(t.Context(), "commandstats").Result()
	require.NoError(t, err)
	require.Contains(t, stats, "cmdstat_evalsha:calls=")
}
