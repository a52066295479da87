package main

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/liveperson"
	"github.com/stepup-bridge/stepup-bridge/adapters/standard"
)

func TestHistQuantilesWithinOneBucket(t *testing.T) {
	h := newHist()
	rng := rand.New(rand.NewPCG(7, 7))
	var all []time.Duration
	for range 100000 {
		d := time.Duration(rng.ExpFloat64() * float64(time.Millisecond))
		h.record(d)
		all = append(all, d)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := all[int(q*float64(len(all)))-1]
		got := h.quantile(q)
		// One bucket is 1/64 wide: the reported value is its upper bound.
		assert.InEpsilon(t, float64(exact), float64(got), 1.0/32, "q%v", q)
		assert.GreaterOrEqual(t, got, exact, "q%v", q)
	}
	assert.Equal(t, all[len(all)-1], h.quantile(1))
	assert.Equal(t, uint64(len(all)), h.n)

	other := newHist()
	other.record(time.Hour)
	h.merge(other)
	assert.Equal(t, time.Hour, h.quantile(1))
}

func TestHistBucketsAreMonotonic(t *testing.T) {
	prev := -1
	for v := int64(0); v < 1<<40; v = v*9/8 + 1 {
		i := index(v)
		require.GreaterOrEqual(t, i, prev, "v=%d", v)
		require.GreaterOrEqual(t, value(i), v, "bucket of %d ends below it", v)
		prev = i
	}
}

// The generated webhooks are what the adapters accept: signed as their
// verifiers expect, in the documented shapes.
func TestGeneratedWebhooksVerify(t *testing.T) {
	sec := newSecret()
	sg := &signer{standard: mustKey(sec), lpAccount: lpAccountID, lpClient: lpClientID, lpSecret: []byte("lp-secret")}
	now := time.Now()

	g := newGenerator("acme", "standard", "t1", 50, 5, 10, 1)
	kinds := map[string]int{}
	for range 2000 {
		r := g.nextRequest(now)
		kinds[r.kind]++
		h := sg.header(&r, now)
		id, err := standard.Verify([][]byte{mustKey(sec)}, h, r.body, now, 0)
		require.NoError(t, err)
		require.Equal(t, r.id, id)
		var ev wireEvent
		require.NoError(t, json.Unmarshal(r.body, &ev))
		require.NotEmpty(t, ev.Data.ConversationID)
		require.Equal(t, "/webhooks/acme/standard", r.path)
	}
	for _, k := range []string{kindStarted, kindConsumer, kindAgent, kindVerify, kindClosed} {
		assert.Positive(t, kinds[k], k)
	}

	lp := newGenerator("lp", "liveperson", "t2", 50, 5, 10, 1)
	for range 500 {
		r := lp.nextRequest(now)
		require.NotEqual(t, kindVerify, r.kind, "LivePerson has no agent command")
		h := sg.header(&r, now)
		require.NoError(t, liveperson.Verify(h, r.body, lpAccountID, lpClientID, []byte("lp-secret")))
		var n lpNotification
		require.NoError(t, json.Unmarshal(r.body, &n))
		require.Len(t, n.Body.Changes, 1)
		require.Contains(t, []string{liveperson.TypeMessaging, liveperson.TypeConversation}, n.Type)
	}
}
