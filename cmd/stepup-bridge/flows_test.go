package main

import (
	"bytes"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/oidc/oidctest"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/httpapi"
)

// TestFlowEdges covers what happens around a step-up: repeats, refusals,
// cancellation and binding none. Each case checks the store and the outbox.
func TestFlowEdges(t *testing.T) {
	for _, sc := range storeCases {
		t.Run(sc.name, func(t *testing.T) {
			h := newHarness(t, sc, harnessOptions{})

			t.Run("after the step-up nothing repeats it", func(t *testing.T) {
				h.t = t
				conv, consumer, code := h.pendingLogin()
				hdr, body := h.signed("acme", consumerSays(conv, consumer, code))
				status, got := h.postWebhook("acme", hdr, body)
				require.Equal(t, http.StatusOK, status, "%v", got)
				require.Len(t, h.drainOutbox(), 3)
				before := h.session("acme", conv)
				require.Equal(t, bridge.StateSteppedUp, before.State)

				// The platform retries the code message.
				status, got = h.postWebhook("acme", hdr, body)
				assert.Equal(t, http.StatusOK, status)
				assert.Equal(t, float64(1), got["duplicates"])
				// The consumer types the code again.
				h.webhook("acme", consumerSays(conv, consumer, code))
				// An agent asks again, and the API is asked again.
				h.webhook("acme", agentSays(conv, "/verify"))
				status, got = h.apiRequest(http.MethodPost, "/api/v1/brands/acme/conversations/"+conv+"/login-links", h.brands["acme"].apiKey, []byte(`{"post":true}`))
				assert.Equal(t, http.StatusConflict, status, "%v", got)

				after := h.session("acme", conv)
				assert.Equal(t, bridge.StateSteppedUp, after.State)
				assert.Equal(t, before.Identity, after.Identity)
				assert.Equal(t, before.SteppedUpAt, after.SteppedUpAt)
				assert.Equal(t, before.LinksIssued, after.LinksIssued)
				// Only the agent hears why their /verify did nothing.
				h.requireOnly(conv, bridge.EffectNotifyAgents, "No verification link sent: this conversation is already verified.")
			})

			t.Run("callback replayed after success", func(t *testing.T) {
				h.t = t
				conv, _ := h.newConversation()
				b := h.newBrowser()
				callback := b.authorize(b.startLogin(h.requestLink("acme", conv, false)))
				require.Equal(t, http.StatusOK, b.get(callback).status)
				before := h.session("acme", conv)
				// The cookie is gone, and a browser that kept it (or an
				// attacker who copied it) finds the transaction spent.
				assert.Equal(t, http.StatusBadRequest, b.get(callback).status)
				assert.Equal(t, before, h.session("acme", conv), "session changed")
				h.requireNoOutbox()
			})

			t.Run("only the latest link works", func(t *testing.T) {
				h.t = t
				conv, _ := h.newConversation()
				first := h.requestLink("acme", conv, false)
				second := h.requestLink("acme", conv, false)
				b := h.newBrowser()
				assert.Equal(t, http.StatusGone, b.get(first).status)
				assert.Equal(t, http.StatusGone, b.submit(first).status)
				assert.Equal(t, http.StatusOK, b.get(second).status)
				assert.Equal(t, 2, h.session("acme", conv).LinksIssued)
			})

			t.Run("too many links", func(t *testing.T) {
				h.t = t
				conv, _ := h.newConversation()
				for range 5 { // max_links default 5
					h.requestLink("acme", conv, false)
				}
				before := h.session("acme", conv)
				status, got := h.apiRequest(http.MethodPost, "/api/v1/brands/acme/conversations/"+conv+"/login-links", h.brands["acme"].apiKey, []byte(`{"post":true}`))
				assert.Equal(t, http.StatusTooManyRequests, status, "%v", got)
				// The agent command is refused too, and acknowledged.
				assert.Equal(t, float64(1), h.webhook("acme", agentSays(conv, "/verify"))["events"])
				assert.Equal(t, before, h.session("acme", conv), "session changed")
				h.requireOnly(conv, bridge.EffectNotifyAgents, "No verification link sent: this conversation already had 5 links")
			})

			t.Run("closed conversation", func(t *testing.T) {
				h.t = t
				conv, _ := h.newConversation()
				link := h.requestLink("acme", conv, false)
				h.webhook("acme", event{"conversation.closed", map[string]string{"conversation_id": conv}})
				before := h.session("acme", conv)
				require.Equal(t, bridge.StateClosed, before.State)

				b := h.newBrowser()
				assert.Equal(t, http.StatusGone, b.get(link).status, "the link died with the conversation")
				assert.Equal(t, http.StatusGone, b.submit(link).status)
				status, got := h.apiRequest(http.MethodPost, "/api/v1/brands/acme/conversations/"+conv+"/login-links", h.brands["acme"].apiKey, nil)
				assert.Equal(t, http.StatusConflict, status, "%v", got)
				assert.Equal(t, before, h.session("acme", conv), "session changed")
				h.requireNoOutbox()
			})

			t.Run("login cancelled at the IdP", func(t *testing.T) {
				h.t = t
				conv, _ := h.newConversation()
				b := h.newBrowser()
				auth := b.startLogin(h.requestLink("acme", conv, false))
				before := h.session("acme", conv)
				h.idp.QueueCancel()
				p := b.get(b.authorize(auth))
				assert.Equal(t, http.StatusForbidden, p.status)
				assert.Contains(t, p.body, "Sign-in cancelled")
				requireSecurityHeaders(t, p)
				assert.Equal(t, before, h.session("acme", conv), "session changed")
				h.requireNoOutbox()
			})

			t.Run("agent command on a channel-restricted brand", func(t *testing.T) {
				h.t = t
				// globex allows the web channel only; agent messages carry
				// no channel or consumer: the conversation's own count.
				web, sms := "conv-"+bridge.RandomString(6), "conv-"+bridge.RandomString(6)
				h.webhook("globex", started(web, "anon-web", "web"))
				h.webhook("globex", started(sms, "anon-sms", "sms"))
				h.drainOutbox()

				h.webhook("globex", agentSays(web, "/verify"))
				assert.Equal(t, 1, h.session("globex", web).LinksIssued)
				posts := h.drainOutbox()
				require.Len(t, posts, 1)
				assert.Equal(t, bridge.EffectPostMessage, posts[0].Effect)
				assert.Equal(t, "anon-web", posts[0].Consumer, "the link goes to the conversation's consumer")

				before := h.session("globex", sms)
				h.webhook("globex", agentSays(sms, "/verify"))
				after := h.session("globex", sms)
				assert.Equal(t, 0, after.LinksIssued, "no link on sms")
				assert.Equal(t, before.State, after.State)
				h.requireNoOutbox()
				status, got := h.apiRequest(http.MethodPost, "/api/v1/brands/globex/conversations/"+sms+"/login-links", h.brands["globex"].apiKey, nil)
				assert.Equal(t, http.StatusUnprocessableEntity, status, "%v", got)
			})

			t.Run("binding none steps up at the callback", func(t *testing.T) {
				h.t = t
				conv, consumer := "conv-"+bridge.RandomString(6), "anon-"+bridge.RandomString(6)
				h.webhook("initech", started(conv, consumer, "web"))
				b := h.newBrowser()
				p := b.get(b.authorize(b.startLogin(h.requestLink("initech", conv, false))))
				require.Equal(t, http.StatusOK, p.status, p.body)
				assert.NotRegexp(t, codeRe, p.body, "no code with binding none")
				requireSecurityHeaders(t, p)
				s := h.session("initech", conv)
				assert.Equal(t, bridge.StateSteppedUp, s.State)
				require.NotNil(t, s.Identity)
				assert.Equal(t, "user-42", s.Identity.Subject)
				effects := map[bridge.Effect]bridge.OutboxEntry{}
				for _, e := range h.drainOutbox() {
					effects[e.Effect] = e
				}
				require.Len(t, effects, 3)
				for _, e := range effects {
					assert.Equal(t, consumer, e.Consumer)
					assert.Equal(t, "standard", e.Platform)
				}
				require.NotNil(t, effects[bridge.EffectAttachIdentity].Identity)
				assert.Equal(t, "user-42", effects[bridge.EffectAttachIdentity].Identity.Subject)
			})
		})
	}
}

// TestConcurrentUse races the single-use steps: whatever the interleaving,
// one ticket starts one login, one transaction finishes once, and one code
// steps up once with one set of platform calls.
func TestConcurrentUse(t *testing.T) {
	const n = 8
	race := func(f func(i int) int) map[int]int {
		codes := make(chan int, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				codes <- f(i)
			}()
		}
		close(start)
		wg.Wait()
		close(codes)
		count := map[int]int{}
		for c := range codes {
			count[c]++
		}
		return count
	}
	for _, sc := range storeCases {
		t.Run(sc.name, func(t *testing.T) {
			h := newHarness(t, sc, harnessOptions{})

			t.Run("one ticket, many browsers", func(t *testing.T) {
				h.t = t
				conv, _ := h.newConversation()
				link := h.requestLink("acme", conv, false)
				browsers := make([]*browser, n)
				for i := range browsers {
					browsers[i] = h.newBrowser()
				}
				got := race(func(i int) int { return postStatus(h, browsers[i], link) })
				assert.Equal(t, map[int]int{http.StatusSeeOther: 1, http.StatusGone: n - 1}, got)
			})

			t.Run("one transaction, many callbacks", func(t *testing.T) {
				h.t = t
				conv, _ := h.newConversation()
				b := h.newBrowser()
				callback := b.authorize(b.startLogin(h.requestLink("acme", conv, false)))
				cookie := loginCookieOf(h, b)
				got := race(func(int) int { return getWithCookie(h, callback, cookie) })
				assert.Equal(t, map[int]int{http.StatusOK: 1, http.StatusBadRequest: n - 1}, got)
				assert.Equal(t, bridge.StateLoginVerified, h.session("acme", conv).State)
			})

			t.Run("one code, many messages", func(t *testing.T) {
				h.t = t
				conv, consumer, code := h.pendingLogin()
				reqs := make([]struct {
					hdr  http.Header
					body []byte
				}, n)
				for i := range reqs {
					reqs[i].hdr, reqs[i].body = h.signed("acme", consumerSays(conv, consumer, code))
				}
				got := race(func(i int) int { return webhookStatus(h, reqs[i].hdr, reqs[i].body) })
				assert.Equal(t, map[int]int{http.StatusOK: n}, got)
				assert.Equal(t, bridge.StateSteppedUp, h.session("acme", conv).State)
				assert.Len(t, h.drainOutbox(), 3, "one step-up, one set of calls")
			})
		})
	}
}

// The helpers below run off the test goroutine: they report, never FailNow.

func postStatus(h *harness, b *browser, link string) int {
	req, err := http.NewRequestWithContext(h.ctx, http.MethodPost, link, nil)
	if err != nil {
		return -1
	}
	req.Header.Set("Origin", "null")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := b.c.Do(req)
	if err != nil {
		return -1
	}
	resp.Body.Close()
	return resp.StatusCode
}

func loginCookieOf(h *harness, b *browser) *http.Cookie {
	u, _ := url.Parse(h.url + "/callback/acme")
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == httpapi.CookieName {
			return c
		}
	}
	h.t.Fatal("no login cookie in the jar")
	return nil
}

func getWithCookie(h *harness, u string, c *http.Cookie) int {
	req, err := http.NewRequestWithContext(h.ctx, http.MethodGet, u, nil)
	if err != nil {
		return -1
	}
	req.AddCookie(c)
	resp, err := (&http.Client{Transport: h.rt, CheckRedirect: noRedirect}).Do(req)
	if err != nil {
		return -1
	}
	resp.Body.Close()
	return resp.StatusCode
}

func webhookStatus(h *harness, hdr http.Header, body []byte) int {
	req, err := http.NewRequestWithContext(h.ctx, http.MethodPost, h.url+"/webhooks/acme/standard", bytes.NewReader(body))
	if err != nil {
		return -1
	}
	req.Header = hdr.Clone()
	resp, err := h.api.Do(req)
	if err != nil {
		return -1
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestRestartLosesNothing stops the bridge while the platform is down and
// the step-up's calls are being retried, starts a new one on the same Redis,
// and expects every call delivered once the platform is back. (The memory
// store is honest about losing its outbox on restart: Redis only.)
func TestRestartLosesNothing(t *testing.T) {
	h := newHarness(t, storeCase{"redis", "redis"}, harnessOptions{workers: true})
	platform := h.brands["acme"].platform
	platform.FailNext(1000, http.StatusServiceUnavailable)

	conv, consumer := h.newConversation()
	code := unspaced(h.newBrowser().login(h.requestLink("acme", conv, false)))
	h.webhook("acme", consumerSays(conv, consumer, code))
	require.Equal(t, bridge.StateSteppedUp, h.session("acme", conv).State)
	deadline := time.Now().Add(20 * time.Second)
	for platform.Requests() < 3 { // deliveries under way, and failing
		require.True(t, time.Now().Before(deadline), "no delivery attempts")
		time.Sleep(20 * time.Millisecond)
	}
	require.Empty(t, platform.Calls())

	h.restart()
	platform.ClearFaults()
	calls := h.waitCalls("acme", conv, 3)
	checkStepUpCalls(t, h, calls, conv, consumer, oidctestDefaultUser)
	assert.Equal(t, bridge.StateSteppedUp, h.session("acme", conv).State, "the new replica sees the state")
}

// oidctestDefaultUser is who oidctest logs in when no user is queued.
var oidctestDefaultUser = oidctest.User{Subject: "user-42", Name: "Alice Example", Email: "alice@example.test", EmailVerified: true, AMR: []string{"pwd", "otp"}, ACR: "urn:example:loa:2"}
