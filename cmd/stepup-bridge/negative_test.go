package main

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/oidc/oidctest"
	"github.com/stepup-bridge/stepup-bridge/adapters/standard/standardtest"
	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// The negative tests run the router without outbox workers, so that "no
// platform call" is checked exactly: no outbox entry was written at all.

// newConversation starts a conversation on acme and clears the outbox.
func (h *harness) newConversation() (conv, consumer string) {
	h.t.Helper()
	conv, consumer = "conv-"+bridge.RandomString(6), "anon-"+bridge.RandomString(6)
	h.webhook("acme", started(conv, consumer, "web"))
	return conv, consumer
}

// pendingLogin brings a new conversation to login_verified and returns
// its confirm code (as typed, digits only).
func (h *harness) pendingLogin() (conv, consumer, code string) {
	h.t.Helper()
	conv, consumer = h.newConversation()
	code = unspaced(h.newBrowser().login(h.requestLink("acme", conv, false)))
	require.Equal(h.t, bridge.StateLoginVerified, h.session("acme", conv).State)
	h.drainOutbox()
	return conv, consumer, code
}

func TestWebhookRejected(t *testing.T) {
	for _, sc := range storeCases {
		t.Run(sc.name, func(t *testing.T) {
			h := newHarness(t, sc, harnessOptions{})
			conv, _ := h.newConversation()
			h.drainOutbox()
			// The agent command: accepted, it would issue and post a link.
			verify := agentSays(conv, "/verify")
			secret := h.brands["acme"].webhookSecret
			signedAt := func(at time.Time) (http.Header, []byte) {
				body := standardtest.Body(verify.typ, at, verify.data)
				return standardtest.SignedRequest(secret, "msg_"+bridge.RandomString(12), at, body), body
			}
			tests := []struct {
				name string
				req  func() (http.Header, []byte)
			}{
				{"forged signature", func() (http.Header, []byte) {
					body := standardtest.Body(verify.typ, h.clock.Now(), verify.data)
					return standardtest.SignedRequest(standardtest.NewSecret(), "msg_"+bridge.RandomString(12), h.clock.Now(), body), body
				}},
				{"other brand's secret", func() (http.Header, []byte) {
					body := standardtest.Body(verify.typ, h.clock.Now(), verify.data)
					return standardtest.SignedRequest(h.brands["globex"].webhookSecret, "msg_"+bridge.RandomString(12), h.clock.Now(), body), body
				}},
				{"body changed after signing", func() (http.Header, []byte) {
					hdr, body := signedAt(h.clock.Now())
					return hdr, bytes.Replace(body, []byte("agent-7"), []byte("agent-8"), 1)
				}},
				{"webhook-id changed after signing", func() (http.Header, []byte) {
					hdr, body := signedAt(h.clock.Now())
					hdr.Set("webhook-id", "msg_other")
					return hdr, body
				}},
				{"absent signature", func() (http.Header, []byte) {
					hdr, body := signedAt(h.clock.Now())
					hdr.Del("webhook-signature")
					return hdr, body
				}},
				{"no Standard Webhooks headers", func() (http.Header, []byte) {
					_, body := signedAt(h.clock.Now())
					return http.Header{"Content-Type": {"application/json"}}, body
				}},
				{"stale timestamp", func() (http.Header, []byte) { return signedAt(h.clock.Now().Add(-6 * time.Minute)) }},
				{"timestamp from the future", func() (http.Header, []byte) { return signedAt(h.clock.Now().Add(6 * time.Minute)) }},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					h.t = t
					before := h.session("acme", conv)
					hdr, body := tt.req()
					code, got := h.postWebhook("acme", hdr, body)
					assert.Equal(t, http.StatusUnauthorized, code, "%v", got)
					assert.Equal(t, before, h.session("acme", conv), "session changed")
					h.requireNoOutbox()
				})
			}

			t.Run("forged conversation.started creates nothing", func(t *testing.T) {
				h.t = t
				fresh := "conv-" + bridge.RandomString(6)
				body := standardtest.Body("conversation.started", h.clock.Now(), standardtest.ConversationStarted{ConversationID: fresh, ConsumerID: "anon-x"})
				code, got := h.postWebhook("acme", standardtest.SignedRequest(standardtest.NewSecret(), "msg_"+bridge.RandomString(12), h.clock.Now(), body), body)
				assert.Equal(t, http.StatusUnauthorized, code, "%v", got)
				h.requireNoSession("acme", fresh)
				h.requireNoOutbox()
			})

			t.Run("replayed webhook-id", func(t *testing.T) {
				h.t = t
				hdr, body := signedAt(h.clock.Now())
				code, got := h.postWebhook("acme", hdr, body)
				require.Equal(t, http.StatusOK, code, "%v", got)
				assert.Equal(t, float64(1), got["events"])
				require.Len(t, h.drainOutbox(), 1, "the link is posted")
				before := h.session("acme", conv)
				assert.Equal(t, 1, before.LinksIssued)

				// The same request again, as a platform retry or an attacker would.
				code, got = h.postWebhook("acme", hdr, body)
				assert.Equal(t, http.StatusOK, code, "a duplicate is acknowledged")
				assert.Equal(t, map[string]any{"status": "ok", "events": float64(0), "duplicates": float64(1)}, got)
				assert.Equal(t, before, h.session("acme", conv), "session changed")
				h.requireNoOutbox()

				// The same id with a new signature and timestamp (a retry later on).
				h.clock.Advance(time.Minute)
				body2 := standardtest.Body(verify.typ, h.clock.Now(), verify.data)
				code, got = h.postWebhook("acme", standardtest.SignedRequest(secret, hdr.Get("webhook-id"), h.clock.Now(), body2), body2)
				assert.Equal(t, http.StatusOK, code)
				assert.Equal(t, float64(1), got["duplicates"])
				assert.Equal(t, before, h.session("acme", conv), "session changed")
				h.requireNoOutbox()
			})
		})
	}
}

func TestRequestRejected(t *testing.T) {
	for _, sc := range storeCases {
		t.Run(sc.name, func(t *testing.T) {
			h := newHarness(t, sc, harnessOptions{})
			conv, consumer := h.newConversation()
			h.drainOutbox()
			acmeKey, globexKey := h.brands["acme"].apiKey, h.brands["globex"].apiKey
			links := "/api/v1/brands/acme/conversations/" + conv + "/login-links"
			signedRaw := func(body []byte) (http.Header, []byte) {
				return standardtest.SignedRequest(h.brands["acme"].webhookSecret, "msg_"+bridge.RandomString(12), h.clock.Now(), body), body
			}
			big := consumerSays(conv, consumer, strings.Repeat("a", int(h.maxBody)))
			tests := []struct {
				name   string
				do     func() (int, map[string]any)
				status int
			}{
				{"API: missing key", func() (int, map[string]any) {
					return h.apiRequest(http.MethodPost, links, "", []byte(`{"post":true}`))
				}, http.StatusUnauthorized},
				{"API: wrong key", func() (int, map[string]any) {
					return h.apiRequest(http.MethodPost, links, acmeKey+"x", []byte(`{"post":true}`))
				}, http.StatusUnauthorized},
				{"API: brand B's key on brand A", func() (int, map[string]any) {
					return h.apiRequest(http.MethodPost, links, globexKey, []byte(`{"post":true}`))
				}, http.StatusUnauthorized},
				{"API: brand B's key reads brand A's status", func() (int, map[string]any) {
					return h.apiRequest(http.MethodGet, "/api/v1/brands/acme/conversations/"+conv, globexKey, nil)
				}, http.StatusUnauthorized},
				{"API: status without a key", func() (int, map[string]any) {
					return h.apiRequest(http.MethodGet, "/api/v1/brands/acme/conversations/"+conv, "", nil)
				}, http.StatusUnauthorized},
				{"API: brand B's key, brand B's path, brand A's conversation id", func() (int, map[string]any) {
					return h.apiRequest(http.MethodPost, "/api/v1/brands/globex/conversations/"+conv+"/login-links", globexKey, []byte(`{"post":true}`))
				}, http.StatusNotFound},
				{"API: unknown brand", func() (int, map[string]any) {
					return h.apiRequest(http.MethodPost, "/api/v1/brands/nope/conversations/"+conv+"/login-links", acmeKey, []byte(`{"post":true}`))
				}, http.StatusNotFound},
				{"API: unknown conversation", func() (int, map[string]any) {
					return h.apiRequest(http.MethodPost, "/api/v1/brands/acme/conversations/conv-unknown/login-links", acmeKey, []byte(`{"post":true}`))
				}, http.StatusNotFound},
				{"API: malformed JSON", func() (int, map[string]any) {
					return h.apiRequest(http.MethodPost, links, acmeKey, []byte(`{"post":tru`))
				}, http.StatusBadRequest},
				{"API: unknown field", func() (int, map[string]any) {
					return h.apiRequest(http.MethodPost, links, acmeKey, []byte(`{"post":true,"url":"https://evil.example"}`))
				}, http.StatusBadRequest},
				{"API: oversized body", func() (int, map[string]any) {
					return h.apiRequest(http.MethodPost, links, acmeKey, []byte(`{"post":true}`+strings.Repeat(" ", int(h.maxBody))))
				}, http.StatusRequestEntityTooLarge},
				{"webhook: oversized body", func() (int, map[string]any) {
					hdr, body := h.signed("acme", big)
					return h.postWebhook("acme", hdr, body)
				}, http.StatusRequestEntityTooLarge},
				{"webhook: malformed JSON, signed", func() (int, map[string]any) {
					hdr, body := signedRaw([]byte(`{"type":"message.created","data":{`))
					return h.postWebhook("acme", hdr, body)
				}, http.StatusBadRequest},
				{"webhook: wrong JSON type, signed", func() (int, map[string]any) {
					hdr, body := signedRaw([]byte(`{"type":"message.created","data":{"conversation_id":42}}`))
					return h.postWebhook("acme", hdr, body)
				}, http.StatusBadRequest},
				{"webhook: unknown brand", func() (int, map[string]any) {
					hdr, body := h.signed("acme", agentSays(conv, "/verify"))
					return h.postWebhookTo("/webhooks/nope/standard", hdr, body)
				}, http.StatusNotFound},
				{"webhook: platform not configured", func() (int, map[string]any) {
					hdr, body := h.signed("acme", agentSays(conv, "/verify"))
					return h.postWebhookTo("/webhooks/acme/twilio", hdr, body)
				}, http.StatusNotFound},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					h.t = t
					before := h.session("acme", conv)
					code, got := tt.do()
					assert.Equal(t, tt.status, code, "%v", got)
					assert.NotEmpty(t, got["error"], "a JSON error body")
					assert.Equal(t, before, h.session("acme", conv), "session changed")
					h.requireNoOutbox()
				})
			}
			t.Run("the unknown conversation was not created", func(t *testing.T) {
				h.t = t
				h.requireNoSession("acme", "conv-unknown")
			})
		})
	}
}

func TestLoginLinkRejected(t *testing.T) {
	for _, sc := range storeCases {
		t.Run(sc.name, func(t *testing.T) {
			h := newHarness(t, sc, harnessOptions{})

			t.Run("reused ticket", func(t *testing.T) {
				h.t = t
				conv, _ := h.newConversation()
				link := h.requestLink("acme", conv, false)
				b := h.newBrowser()
				b.startLogin(link)
				before := h.session("acme", conv)
				for _, other := range []*browser{b, h.newBrowser()} {
					p := other.get(link)
					assert.Equal(t, http.StatusGone, p.status)
					assert.Contains(t, p.body, "This link has expired")
					requireSecurityHeaders(t, p)
					p = other.submit(link)
					assert.Equal(t, http.StatusGone, p.status)
					assert.Nil(t, loginCookie(t, p.header), "no new login transaction")
				}
				assert.Equal(t, before, h.session("acme", conv), "session changed")
				h.requireNoOutbox()
			})

			t.Run("ticket of another brand", func(t *testing.T) {
				h.t = t
				conv, _ := h.newConversation()
				link := h.requestLink("acme", conv, false)
				before := h.session("acme", conv)
				foreign := strings.Replace(link, "/login/acme/", "/login/globex/", 1)
				b := h.newBrowser()
				p := b.get(foreign)
				assert.Equal(t, http.StatusGone, p.status)
				p = b.submit(foreign)
				assert.Equal(t, http.StatusGone, p.status)
				assert.Nil(t, loginCookie(t, p.header))
				assert.Equal(t, before, h.session("acme", conv), "session changed")
				h.requireNoOutbox()
				// Not spent: the link still works for its own brand.
				assert.Equal(t, http.StatusOK, b.get(link).status)
			})

			t.Run("unknown brand and malformed ticket", func(t *testing.T) {
				h.t = t
				b := h.newBrowser()
				p := b.get(h.url + "/login/nope/AAAAAAAAAAAAAAAAAAAAAAAA")
				assert.Equal(t, http.StatusNotFound, p.status)
				requireSecurityHeaders(t, p)
				p = b.get(h.url + "/login/acme/not-a-ticket")
				assert.Equal(t, http.StatusGone, p.status)
				p = b.get(h.url + "/callback/nope?state=x&code=y")
				assert.Equal(t, http.StatusNotFound, p.status)
			})

			t.Run("cross-site form post", func(t *testing.T) {
				h.t = t
				conv, _ := h.newConversation()
				link := h.requestLink("acme", conv, false)
				before := h.session("acme", conv)
				p := h.newBrowser().do(http.MethodPost, link, http.Header{"Origin": {"null"}, "Sec-Fetch-Site": {"cross-site"}})
				assert.Equal(t, http.StatusForbidden, p.status)
				assert.Nil(t, loginCookie(t, p.header))
				assert.Equal(t, before, h.session("acme", conv), "session changed")
				h.requireNoOutbox()
			})

			t.Run("state without its cookie", func(t *testing.T) {
				h.t = t
				conv, _ := h.newConversation()
				victim := h.newBrowser()
				callback := victim.authorize(victim.startLogin(h.requestLink("acme", conv, false)))
				before := h.session("acme", conv)

				// Another browser (the attacker's, or a forwarded URL) has no cookie.
				p := h.newBrowser().get(callback)
				assert.Equal(t, http.StatusBadRequest, p.status)
				assert.Contains(t, p.body, "Please start again")
				requireSecurityHeaders(t, p)
				assert.Equal(t, before, h.session("acme", conv), "session changed")
				h.requireNoOutbox()

				// The login was not spent: the browser that started it finishes it.
				p = victim.get(callback)
				assert.Equal(t, http.StatusOK, p.status, p.body)
				assert.Regexp(t, codeRe, p.body)
			})

			t.Run("callback of another brand", func(t *testing.T) {
				h.t = t
				conv, _ := h.newConversation()
				b := h.newBrowser()
				callback := b.authorize(b.startLogin(h.requestLink("acme", conv, false)))
				before := h.session("acme", conv)
				// The __Host- cookie (Path=/) goes to every brand's callback.
				p := b.get(strings.Replace(callback, "/callback/acme?", "/callback/globex?", 1))
				assert.Equal(t, http.StatusBadRequest, p.status, p.body)
				assert.Equal(t, before, h.session("acme", conv), "session changed")
				h.requireNoSession("globex", conv)
				h.requireNoOutbox()
			})

			t.Run("state that does not match the cookie", func(t *testing.T) {
				h.t = t
				conv, _ := h.newConversation()
				b := h.newBrowser()
				callback := b.authorize(b.startLogin(h.requestLink("acme", conv, false)))
				before := h.session("acme", conv)
				p := b.get(strings.Replace(callback, "state=", "state=x", 1))
				assert.Equal(t, http.StatusBadRequest, p.status)
				assert.Equal(t, before, h.session("acme", conv), "session changed")
				h.requireNoOutbox()
				// The transaction is single use: the right state does not revive it.
				assert.Equal(t, http.StatusBadRequest, b.get(callback).status)
			})
		})
	}
}

func TestExpiredTicket(t *testing.T) {
	for _, sc := range storeCases {
		t.Run(sc.name, func(t *testing.T) {
			h := newHarness(t, sc, harnessOptions{})
			conv, _ := h.newConversation()
			link := h.requestLink("acme", conv, false)
			b := h.newBrowser()
			require.Equal(t, http.StatusOK, b.get(link).status)
			h.clock.Advance(10*time.Minute + time.Second) // link_ttl default 10m
			before := h.session("acme", conv)

			p := b.get(link)
			assert.Equal(t, http.StatusGone, p.status)
			assert.Contains(t, p.body, "This link has expired")
			p = b.submit(link)
			assert.Equal(t, http.StatusGone, p.status)
			assert.Nil(t, loginCookie(t, p.header))
			assert.Equal(t, "expired", h.status("acme", conv)["state"])
			assert.Equal(t, before, h.session("acme", conv), "session changed")
			h.requireNoOutbox()
		})
	}
}

func TestTokenRejected(t *testing.T) {
	for _, sc := range storeCases {
		t.Run(sc.name, func(t *testing.T) {
			h := newHarness(t, sc, harnessOptions{})
			pem, err := h.idp.PublicKeyPEM("")
			require.NoError(t, err)
			tests := []struct {
				name  string
				issue func(*oidctest.Issue)
			}{
				{"wrong nonce", func(is *oidctest.Issue) { is.Claims["nonce"] = "n-" + bridge.RandomString(16) }},
				{"no nonce", func(is *oidctest.Issue) { delete(is.Claims, "nonce") }},
				{"alg none", func(is *oidctest.Issue) { is.Raw = h.idp.NoneToken(is.Claims) }},
				{"HS256 keyed with the RSA public key", func(is *oidctest.Issue) {
					raw, err := h.idp.HMACToken(is.Claims, h.idp.KID("RS256"), pem)
					if err != nil { // runs in the IdP's handler: no FailNow
						t.Error(err)
					}
					is.Raw = raw
				}},
				{"signed by a key the IdP never published", func(is *oidctest.Issue) {
					raw, err := h.idp.ForeignToken(is.Claims, "RS256", h.idp.KID("RS256"))
					if err != nil {
						t.Error(err)
					}
					is.Raw = raw
				}},
				{"wrong aud", func(is *oidctest.Issue) { is.Claims["aud"] = "someone-else"; delete(is.Claims, "azp") }},
				{"wrong azp", func(is *oidctest.Issue) { is.Claims["azp"] = "someone-else" }},
				{"wrong iss", func(is *oidctest.Issue) { is.Claims["iss"] = "https://evil.example" }},
				{"expired", func(is *oidctest.Issue) {
					now := h.clock.Now()
					is.Claims["exp"] = now.Add(-2 * time.Minute).Unix() // beyond the 30s leeway
					is.Claims["iat"] = now.Add(-7 * time.Minute).Unix()
				}},
				{"no exp", func(is *oidctest.Issue) { delete(is.Claims, "exp") }},
				{"issued in the future", func(is *oidctest.Issue) {
					is.Claims["iat"] = h.clock.Now().Add(5 * time.Minute).Unix()
					is.Claims["nbf"] = h.clock.Now().Add(5 * time.Minute).Unix()
				}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					h.t = t
					conv, _ := h.newConversation()
					b := h.newBrowser()
					callback := b.authorize(b.startLogin(h.requestLink("acme", conv, false)))
					before := h.session("acme", conv)
					h.idp.OnIssue(func(is *oidctest.Issue) { tt.issue(is) })
					defer h.idp.OnIssue(nil)

					p := b.get(callback)
					assert.Equal(t, http.StatusForbidden, p.status, p.body)
					assert.Contains(t, p.body, "We could not verify this sign-in")
					requireSecurityHeaders(t, p)
					assert.NotRegexp(t, codeRe, p.body)
					assert.Equal(t, before, h.session("acme", conv), "session changed")
					h.requireNoOutbox()
				})
			}
			t.Run("control: the same flow without a hook works", func(t *testing.T) {
				h.t = t
				conv, _ := h.newConversation()
				h.newBrowser().login(h.requestLink("acme", conv, false))
				assert.Equal(t, bridge.StateLoginVerified, h.session("acme", conv).State)
			})
		})
	}
}

func TestConfirmCodeRejected(t *testing.T) {
	for _, sc := range storeCases {
		t.Run(sc.name, func(t *testing.T) {
			h := newHarness(t, sc, harnessOptions{})

			t.Run("code typed in another conversation", func(t *testing.T) {
				h.t = t
				convA, consumerA, codeA := h.pendingLogin()
				convB, consumerB, codeB := h.pendingLogin()
				for codeA == codeB { // one chance in a million: try again
					convB, consumerB, codeB = h.pendingLogin()
				}
				beforeA := h.session("acme", convA)

				h.webhook("acme", consumerSays(convB, consumerB, codeA))
				assert.Equal(t, beforeA, h.session("acme", convA), "the code's own conversation changed")
				b := h.session("acme", convB)
				assert.Equal(t, bridge.StateLoginVerified, b.State)
				assert.Equal(t, 1, b.CodeAttempts, "a wrong code in B")
				assert.Nil(t, b.Identity)
				h.requireOnlyFeedback(convB, "That code does not match.")

				// In its own conversation the same code steps up.
				h.webhook("acme", consumerSays(convA, consumerA, codeA))
				assert.Equal(t, bridge.StateSteppedUp, h.session("acme", convA).State)
				assert.Len(t, h.drainOutbox(), 3)
			})

			t.Run("too many wrong codes", func(t *testing.T) {
				h.t = t
				conv, consumer, code := h.pendingLogin()
				wrong := func(i int) string { // differs from code in one digit
					d := []byte(code)
					d[i] = '0' + (d[i]-'0'+1)%10
					return string(d)
				}
				for i := range 2 {
					h.webhook("acme", consumerSays(conv, consumer, wrong(i)))
					s := h.session("acme", conv)
					assert.Equal(t, bridge.StateLoginVerified, s.State)
					assert.Equal(t, i+1, s.CodeAttempts)
				}
				h.webhook("acme", consumerSays(conv, consumer, wrong(2))) // code_attempts default 3
				s := h.session("acme", conv)
				assert.NotEqual(t, bridge.StateLoginVerified, s.State, "the login is discarded")
				assert.Empty(t, s.CodeHash)
				assert.Nil(t, s.Pending)

				// The right code now comes too late: an ordinary message.
				h.webhook("acme", consumerSays(conv, consumer, code))
				s = h.session("acme", conv)
				assert.NotEqual(t, bridge.StateSteppedUp, s.State)
				assert.Nil(t, s.Identity)
				h.requireOnlyFeedback(conv, "That code does not match.", "That code does not match.", "Too many wrong codes")
			})

			t.Run("expired code", func(t *testing.T) {
				h.t = t
				conv, consumer, code := h.pendingLogin()
				h.clock.Advance(5*time.Minute + time.Second) // code_ttl default 5m
				assert.Equal(t, "expired", h.status("acme", conv)["state"])
				h.webhook("acme", consumerSays(conv, consumer, code))
				s := h.session("acme", conv)
				assert.NotEqual(t, bridge.StateSteppedUp, s.State)
				assert.Nil(t, s.Identity)
				h.requireOnlyFeedback(conv, "That code has expired.")
			})
		})
	}
}

// requireOnlyFeedback asserts that the outbox holds exactly the consumer
// messages telling what became of the codes typed in conv (their texts
// start with the given prefixes, in any order), and no step-up effect.
func (h *harness) requireOnlyFeedback(conv string, prefixes ...string) {
	h.t.Helper()
	h.requireOnly(conv, bridge.EffectPostMessage, prefixes...)
}

// requireOnly asserts that the outbox holds exactly entries of one effect
// for conv, without identity, whose texts start with prefixes (any order).
func (h *harness) requireOnly(conv string, effect bridge.Effect, prefixes ...string) {
	h.t.Helper()
	got := h.drainOutbox()
	require.Len(h.t, got, len(prefixes), "outbox entries written")
	slices.SortFunc(got, func(a, b bridge.OutboxEntry) int { return strings.Compare(a.Text, b.Text) })
	prefixes = slices.Sorted(slices.Values(prefixes))
	for i, e := range got {
		assert.Equal(h.t, effect, e.Effect)
		assert.Equal(h.t, conv, e.Key.Conversation)
		assert.Nil(h.t, e.Identity)
		assert.True(h.t, strings.HasPrefix(e.Text, prefixes[i]), "feedback %d: %q", i, e.Text)
	}
}
