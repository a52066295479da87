package oidc_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/oidc/oidctest"
)

// These tests pin what plain keyfunc v3.9.1 / jwkset v0.11.4 do, which is
// why KeySet filters the JWK Set and owns the refresh goroutine's context.
// If an upgrade changes them, revisit KeySet.

func TestKeyfuncMalformedKeyTakesWholeSetDown(t *testing.T) {
	idp := oidctest.NewTest(t, oidctest.Config{})
	idp.AddRawJWK(json.RawMessage(`{"kty":"RSA","kid":"broken","n":"!!!","e":"AQAB"}`))
	jwksURL := idp.Issuer() + "/jwks"

	// Strict first fetch: the constructor fails although two good keys are there.
	ctx, cancel := context.WithCancel(t.Context())
	noErr := false
	_, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{jwksURL}, keyfunc.Override{
		HTTPTimeout: 2 * time.Second, RefreshInterval: time.Hour, NoErrorReturnFirstHTTPReq: &noErr,
		RefreshErrorHandlerFunc: func(string) func(context.Context, error) { return func(context.Context, error) {} },
	})
	require.ErrorContains(t, err, "failed to create JWK from JWK Marshal")

	// ... and its refresh goroutine, started before that fetch, keeps running
	// until the context ends: a leak unless the caller cancels.
	require.NotEmpty(t, leaked(100*time.Millisecond))
	cancel()
	require.Empty(t, leaked(2*time.Second))

	// Lenient first fetch (the default): no error, and no keys at all.
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{jwksURL}, keyfunc.Override{
		HTTPTimeout: 2 * time.Second, RefreshInterval: time.Hour,
		RefreshErrorHandlerFunc: func(string) func(context.Context, error) { return func(context.Context, error) {} },
	})
	require.NoError(t, err)
	keys, err := kf.Storage().KeyReadAll(ctx)
	require.NoError(t, err)
	require.Empty(t, keys)
	cancel()
	require.Empty(t, leaked(2*time.Second))
}
