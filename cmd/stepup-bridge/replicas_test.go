package main

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/oidc/oidctest"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore/redistest"
)

// TestTwoReplicas: two bridges built from one configuration, on two ports,
// sharing one Redis (standalone, and Cluster when STEPUP_REDIS_CLUSTER is
// set), both running outbox workers. The conversation is seen by replica A,
// the login runs on replica B (login page, IdP redirect, callback), the
// confirm code arrives at A: the conversation steps up once and each
// platform call is made once, whichever replica's worker takes it.
func TestTwoReplicas(t *testing.T) {
	for _, sc := range []storeCase{{"redis", "redis"}, {"cluster", "redis-cluster"}} {
		t.Run(sc.name, func(t *testing.T) {
			if sc.driver == "redis-cluster" && len(redistest.ClusterAddrs()) == 0 {
				t.Skip("STEPUP_REDIS_CLUSTER is not set: Redis Cluster tier skipped (bash deploy/test.sh sets it)")
			}
			h := newHarness(t, sc, harnessOptions{workers: true})
			urlB := h.startReplica()

			conv, anon := "conv-"+bridge.RandomString(6), "anon-"+bridge.RandomString(6)
			h.webhook("acme", started(conv, anon, "web"))
			link := h.requestLink("acme", conv, true) // on A
			require.Equal(t, "stepup.message.post", h.waitCalls("acme", conv, 1)[0].Type)

			alice := oidctest.User{Subject: "user-42", Name: "Alice Example", Email: "alice@example.test", EmailVerified: true, AMR: []string{"pwd", "otp"}}
			h.idp.QueueUser(alice)
			b := h.newBrowser()
			callback := b.authorize(b.startLogin(strings.Replace(link, h.url, urlB, 1)))
			p := b.get(strings.Replace(callback, h.url, urlB, 1)) // the load balancer sends the callback to B
			require.Equal(t, 200, p.status, p.body)
			m := codeRe.FindStringSubmatch(p.body)
			require.NotNil(t, m)
			h.secrets = append(h.secrets, unspaced(m[1]), m[1])

			h.webhook("acme", consumerSays(conv, anon, unspaced(m[1]))) // on A
			checkStepUpCalls(t, h, h.waitCalls("acme", conv, 4)[1:], conv, anon, alice)
			// Give both replicas' workers time to repeat anything they would.
			time.Sleep(1500 * time.Millisecond)
			assert.Len(t, h.waitCalls("acme", conv, 4), 4, "each platform call once")
			assert.Zero(t, h.brands["acme"].platform.Duplicates(), "no call repeated")
			assert.Equal(t, "stepped_up", h.status("acme", conv)["state"])
		})
	}
}

// startReplica serves a second App built from the harness's configuration
// and store prefix (with workers) on its own port; it returns its URL.
func (h *harness) startReplica() string {
	h.t.Helper()
	ctx, cancel := context.WithCancel(h.ctx)
	app, err := build(ctx, h.cfg, h.log, buildOptions{Clock: h.clock, RedisPrefix: h.prefix})
	require.NoError(h.t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(h.t, err)
	tln := tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{h.cert}, MinVersion: tls.VersionTLS12})
	done := make(chan error, 1)
	go func() { done <- app.serve(ctx, tln) }()
	t := h.t
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("replica B did not stop")
		}
		app.Close()
	})
	return "https://" + ln.Addr().String()
}
