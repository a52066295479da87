package memstore_test

import (
	"testing"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/memstore"
	"github.com/stepup-bridge/stepup-bridge/bridge/storetest"
)

func TestReviewContract(t *testing.T) {
	storetest.RunReview(t, func(t *testing.T, clock bridge.Clock, o storetest.Options) bridge.Store {
		return memstore.New(memstore.Options{Clock: clock, SessionTTL: o.SessionTTL, DedupeTTL: o.DedupeTTL, ClaimTimeout: o.ClaimTimeout})
	})
}
