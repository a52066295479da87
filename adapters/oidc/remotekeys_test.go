package oidc_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/oidc"
	"github.com/stepup-bridge/stepup-bridge/adapters/oidc/oidctest"
)

func TestRemoteKeys(t *testing.T) {
	clock := newClock()
	idp := oidctest.NewTest(t, oidctest.Config{Now: clock.Now})
	idp.SetJWKSDown(true)
	logs := &syncBuffer{}
	keys, err := oidc.NewRemoteKeys(t.Context(), idp.Issuer()+"/jwks", oidc.KeySetOptions{
		Name: "partner", HTTPTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, 5*time.Millisecond, 20*time.Millisecond)
	require.NoError(t, err)
	t.Cleanup(keys.Close)

	// Down at start: not ready, one clear warning, lookups say "not ready"
	// (retry later), not "unknown key" (forged).
	err = keys.Ready(t.Context())
	require.ErrorIs(t, err, oidc.ErrNotReady)
	assert.Contains(t, err.Error(), "503")
	assert.Equal(t, 1, strings.Count(logs.String(), "JWK Set not loaded"), logs.String())
	v, err := oidc.NewTokenVerifier(oidc.VerifierConfig{Issuer: idp.Issuer(), Audience: idp.ClientID(), MaxTokenAge: time.Minute, Clock: clock}, keys)
	require.NoError(t, err)
	raw, err := idp.Sign(idp.Claims(oidctest.User{Subject: "s"}, ""), "")
	require.NoError(t, err)
	_, err = v.Verify(t.Context(), raw)
	requireRejected(t, err, "id token: signing keys not loaded")
	require.ErrorIs(t, err, oidc.ErrNotReady)

	// It keeps trying and loads once the endpoint is back.
	require.Eventually(t, func() bool { return idp.JWKSFetches() >= 3 }, 5*time.Second, 5*time.Millisecond)
	idp.SetJWKSDown(false)
	require.Eventually(t, func() bool { return keys.Ready(t.Context()) == nil }, 5*time.Second, 5*time.Millisecond)
	_, err = v.Verify(t.Context(), raw)
	require.NoError(t, err)
	assert.Contains(t, logs.String(), "JWK Set loaded")
}

func TestRemoteKeysCloseStopsRetry(t *testing.T) {
	idp := oidctest.NewTest(t, oidctest.Config{})
	url := idp.Issuer() + "/jwks"
	idp.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	keys, err := oidc.NewRemoteKeys(ctx, url, oidc.KeySetOptions{Logger: slog.New(slog.DiscardHandler), HTTPTimeout: time.Second}, time.Millisecond, 5*time.Millisecond)
	require.NoError(t, err)
	time.Sleep(20 * time.Millisecond)
	done := make(chan struct{})
	go func() { keys.Close(); keys.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not return")
	}
	require.Empty(t, leaked(2*time.Second))
}

func TestRemoteKeysRefusesBadURL(t *testing.T) {
	for _, u := range []string{"http://keys.example/jwks", "not a url", "https://user:pw@keys.example/jwks"} {
		_, err := oidc.NewRemoteKeys(t.Context(), u, oidc.KeySetOptions{}, 0, 0)
		require.Error(t, err, u)
	}
}

// TestKeyRemovalPickedUpByRefresh: the IdP withdraws a key (e.g. after a
// compromise) without any new kid showing up in tokens. Nothing triggers an
// unknown-kid refresh, so the periodic refresh is what drops the key: a
// token under it is accepted until the next refresh and refused after.
func TestKeyRemovalPickedUpByRefresh(t *testing.T) {
	clock := newClock()
	idp := oidctest.NewTest(t, oidctest.Config{Now: clock.Now})
	old := idp.KID("RS256")
	_, err := idp.RotateKeys(true) // old and new published
	require.NoError(t, err)
	keys, err := oidc.NewKeySet(t.Context(), idp.Issuer()+"/jwks", oidc.KeySetOptions{
		RefreshInterval: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	t.Cleanup(keys.Close)
	v, err := oidc.NewTokenVerifier(oidc.VerifierConfig{Issuer: idp.Issuer(), Audience: idp.ClientID(), MaxTokenAge: time.Minute, Clock: clock}, keys)
	require.NoError(t, err)
	sign := func(kid string) string {
		raw, err := idp.Sign(idp.Claims(oidctest.User{Subject: "s"}, ""), kid)
		require.NoError(t, err)
		return raw
	}
	_, err = v.Verify(t.Context(), sign(old))
	require.NoError(t, err, "during the overlap both keys verify")
	_, err = v.Verify(t.Context(), sign(""))
	require.NoError(t, err)

	_, err = idp.RotateKeys(false) // only a third key published now
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := v.Verify(t.Context(), sign(old))
		return err != nil && oidc.Reason(err) == "id token: unknown signing key"
	}, 5*time.Second, 20*time.Millisecond, "the withdrawn key is dropped by the periodic refresh")
	_, err = v.Verify(t.Context(), sign(""))
	require.NoError(t, err, "the current key verifies")
}
