package liveperson_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// TestRegistry builds the adapter the way the binary does, from the one
// type → factory table.
func TestRegistry(t *testing.T) {
	assert.Contains(t, adapters.PlatformTypes(), "liveperson")
	assert.Equal(t, config.PlatformTypes(), adapters.PlatformTypes(), "config and registry list the same types")
	lp := &config.LivePersonPlatform{
		AccountID: "12345678", ClientID: "app", ClientSecret: config.Secret{Value: "app-secret"}, CSDSURL: "https://api.liveperson.net",
		Connector: config.LivePersonConnector{Enabled: true, ClientID: "lp", ClientSecret: config.Secret{Value: "s"}, Issuer: "https://www.acme.example", DevGenerateKey: true},
	}
	p, err := adapters.NewPlatform(context.Background(), config.Platform{Type: "liveperson", LivePerson: lp}, adapters.Deps{})
	require.NoError(t, err)
	ti, ok := p.(bridge.TokenIssuer)
	require.True(t, ok, "the adapter serves the token endpoint")
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	require.NoError(t, json.Unmarshal(ti.JWKS(), &set))
	assert.Len(t, set.Keys, 1)
	_, ok = p.(bridge.BrandBound)
	assert.True(t, ok)

	// Connector off: no keys to publish (the service answers 404).
	lp.Connector.Enabled = false
	p, err = adapters.NewPlatform(context.Background(), config.Platform{Type: "liveperson", LivePerson: lp}, adapters.Deps{})
	require.NoError(t, err)
	assert.Nil(t, p.(bridge.TokenIssuer).JWKS())
}
