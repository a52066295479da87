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
