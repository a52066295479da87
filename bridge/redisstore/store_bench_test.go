package redisstore_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore/redistest"
)

// Store-call benchmarks on the shared standalone Redis (one round trip
// each; the time is mostly the loopback round trip and the script). Keys
// live under a fresh prefix, deleted afterwards. Compare runs with
// deploy/bench.sh and benchstat (BENCHMARKS.md).

// benchConvs is how many conversations the events are spread over.
const benchConvs = 1000

// benchSeq numbers events across benchmark rounds: every id is new.
var benchSeq atomic.Int64

func benchStore(b *testing.B) *redisstore.Store {
	b.Helper()
	c := redistest.Client(b, redistest.StandaloneAddr())
	return redistest.Store(b, c, redisstore.Options{})
}

func benchObs(n int, now time.Time) bridge.Observation {
	conv := "bench-c" + strconv.Itoa(n%benchConvs)
	return bridge.Observation{Key: bridge.Key{Brand: "acme", Conversation: conv}, Platform: "standard", Consumer: "anon-" + conv, Channel: "web", At: now}
}

// BenchmarkObserve is the store call of almost every webhook (conversation
// started, an ordinary message): dedupe check and mark, session refresh.
func BenchmarkObserve(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			i := int(benchSeq.Add(1))
			if err := s.Observe(ctx, "ev-s-"+strconv.Itoa(i), benchObs(i, time.Now())); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(8) // 16 callers on 2 cores: round trips overlap
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := int(benchSeq.Add(1))
				if err := s.Observe(ctx, "ev-p-"+strconv.Itoa(i), benchObs(i, time.Now())); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkConfirmCode is a consumer message that looks like a code with no
// login pending (the common case of a code-shaped message), carrying the
// step-up's outbox entries as the service sends them.
func BenchmarkConfirmCode(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		i := int(benchSeq.Add(1))
		now := time.Now()
		obs := benchObs(i, now)
		res, _, err := s.ConfirmCode(ctx, bridge.ConfirmCode{
			EventID: "ev-c-" + strconv.Itoa(i), Obs: obs, CodeHash: bridge.CodeHash(obs.Key, "482913"), MaxAttempts: 3,
			Outbox: []bridge.OutboxEntry{
				{ID: bridge.RandomString(16), Effect: bridge.EffectAttachIdentity, Key: obs.Key, Platform: "standard", Consumer: obs.Consumer, CreatedAt: now},
				{ID: bridge.RandomString(16), Effect: bridge.EffectNotifyAgents, Key: obs.Key, Platform: "standard", Consumer: obs.Consumer, CreatedAt: now},
			},
		})
		if err != nil || res != bridge.CodeNoPending {
			b.Fatal(res, err)
		}
	}
}
