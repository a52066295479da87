package adapters_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters"
	"github.com/stepup-bridge/stepup-bridge/config"
)

func TestNewLoginEvents(t *testing.T) {
	secret := []config.Secret{{Value: "a-shared-secret-of-at-least-32-characters"}}
	ev := func(lc config.LoginEvents) config.LoginEvents {
		lc.MaxEventAge, lc.Leeway, lc.HTTPTimeout = 10*time.Minute, 30*time.Second, time.Second
		lc.Claims = config.ClaimMapping{Subject: "sub"}
		return lc
	}
	ic := config.Identity{Name: "Acme login", Issuer: "https://login.acme.example", LoginEvents: []config.LoginEvents{
		ev(config.LoginEvents{Type: "okta", Secrets: secret}),
		ev(config.LoginEvents{Type: "keycloak", Name: "kc", Secrets: secret, Realm: "acme"}),
		ev(config.LoginEvents{Type: "auth0", Name: "action", Issuer: "acme.eu.auth0.com", Secrets: secret}),
	}}
	d := adapters.Deps{Logger: slog.New(slog.DiscardHandler)}
	srcs, closeAll, err := adapters.NewLoginEvents(t.Context(), ic, d)
	require.NoError(t, err)
	t.Cleanup(closeAll)
	assert.Len(t, srcs, 3)
	for _, name := range []string{"okta", "kc", "action"} {
		assert.Contains(t, srcs, name)
	}

	// Every type config knows has a factory.
	for _, typ := range config.LoginEventTypes() {
		_, _, err := adapters.NewLoginEvents(t.Context(), config.Identity{LoginEvents: []config.LoginEvents{{Type: typ}}}, d)
		if err != nil {
			assert.NotContains(t, err.Error(), "unknown login event type", typ)
		}
	}
	_, _, err = adapters.NewLoginEvents(t.Context(), config.Identity{LoginEvents: []config.LoginEvents{{Type: "webhook"}}}, d)
	require.ErrorContains(t, err, `unknown login event type "webhook" (known: auth0, jwt, keycloak, okta)`)

	// A bad source is refused, naming it.
	bad := ic
	bad.LoginEvents = []config.LoginEvents{ev(config.LoginEvents{Type: "okta", Secrets: []config.Secret{{Value: "short"}}})}
	_, _, err = adapters.NewLoginEvents(t.Context(), bad, d)
	require.ErrorContains(t, err, "login event provider okta")
}
