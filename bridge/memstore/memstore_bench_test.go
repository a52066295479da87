package memstore_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/memstore"
)

// The embedded store's hot-path call, for comparison with redisstore's.

const benchConvs = 1000

// benchSeq numbers events across benchmark rounds: every id is new.
var benchSeq atomic.Int64

func benchObs(n int, now time.Time) bridge.Observation {
	conv := "bench-c" + strconv.Itoa(n%benchConvs)
	return bridge.Observation{Key: bridge.Key{Brand: "acme", Conversation: conv}, Platform: "standard", Consumer: "anon-" + conv, Channel: "web", At: now}
}

func BenchmarkObserve(b *testing.B) {
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		s := memstore.New(memstore.Options{})
		b.ReportAllocs()
		for b.Loop() {
			i := int(benchSeq.Add(1))
			if err := s.Observe(ctx, "ev-"+strconv.Itoa(i), benchObs(i, time.Now())); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		s := memstore.New(memstore.Options{})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := int(benchSeq.Add(1))
				if err := s.Observe(ctx, "ev-"+strconv.Itoa(i), benchObs(i, time.Now())); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
