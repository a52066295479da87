package main

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCallbackIssuer: RFC 9207. The test IdP advertises
// authorization_response_iss_parameter_supported, so a callback without
// iss (a mix-up attack strips or never had it) is refused like a wrong one,
// and nothing changes.
func TestCallbackIssuer(t *testing.T) {
	h := newHarness(t, storeCases[0], harnessOptions{})
	for _, tt := range []struct {
		name string
		iss  func(q url.Values)
	}{
		{"missing", func(q url.Values) { q.Del("iss") }},
		{"another issuer", func(q url.Values) { q.Set("iss", "https://evil.example") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h.t = t
			conv, _ := h.newConversation()
			b := h.newBrowser()
			callback := b.authorize(b.startLogin(h.requestLink("acme", conv, false)))
			u, err := url.Parse(callback)
			require.NoError(t, err)
			require.NotEmpty(t, u.Query().Get("iss"), "the test IdP sends iss")
			q := u.Query()
			tt.iss(q)
			u.RawQuery = q.Encode()
			before := h.session("acme", conv)
			p := b.get(u.String())
			assert.Equal(t, http.StatusForbidden, p.status)
			assert.Equal(t, before, h.session("acme", conv), "session changed")
			h.requireNoOutbox()
		})
	}
}

// TestStatusShowsOpenedLink: once the consumer opened the (single-use)
// link, the status API says so, e.g. after a login abandoned at the IdP.
func TestStatusShowsOpenedLink(t *testing.T) {
	h := newHarness(t, storeCases[0], harnessOptions{})
	conv, _ := h.newConversation()
	link := h.requestLink("acme", conv, false)
	st := h.status("acme", conv)
	assert.Equal(t, "link_issued", st["state"])
	assert.NotContains(t, st, "link_opened")
	h.newBrowser().startLogin(link)
	st = h.status("acme", conv)
	assert.Equal(t, "link_issued", st["state"])
	assert.Equal(t, true, st["link_opened"])
}

// TestIdPDownAtCallback: the IdP's token endpoint fails after the consumer
// signed in: the page says the sign-in service is not answering (503, not
// "we could not verify"), the metric says idp_unavailable (an IdP outage
// must not look like rejected tokens), and nothing changes.
func TestIdPDownAtCallback(t *testing.T) {
	h := newHarness(t, storeCases[0], harnessOptions{})
	conv, _ := h.newConversation()
	b := h.newBrowser()
	callback := b.authorize(b.startLogin(h.requestLink("acme", conv, false)))
	before := h.session("acme", conv)
	h.idp.OnToken(func(w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusBadGateway)
		return true
	})
	p := b.get(callback)
	assert.Equal(t, http.StatusServiceUnavailable, p.status)
	assert.Contains(t, p.body, "The sign-in service is not answering")
	assert.Equal(t, before, h.session("acme", conv), "session changed")
	h.requireNoOutbox()
	m := b.get(h.url + "/metrics")
	assert.Contains(t, m.body, `stepup_logins_total{brand="acme",outcome="idp_unavailable"} 1`)
	assert.NotContains(t, m.body, `outcome="token_rejected"`)
}
