package redisstore_test

import (
	"testing"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore/redistest"
	"github.com/stepup-bridge/stepup-bridge/bridge/storetest"
)

func TestReviewContract(t *testing.T) {
	for _, target := range redistest.Targets() {
		t.Run(target.Name, func(t *testing.T) {
			if target.Skip != "" {
				t.Skip(target.Skip)
			}
			c := redistest.Client(t, target.Addrs...)
			storetest.RunReview(t, func(t *testing.T, clock bridge.Clock, o storetest.Options) bridge.Store {
				return redistest.Store(t, c, redisstore.Options{
					Clock: clock, SessionTTL: o.SessionTTL, DedupeTTL: o.DedupeTTL, ClaimTimeout: o.ClaimTimeout,
				})
			})
		})
	}
}
