package liveperson_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/liveperson"
	"github.com/stepup-bridge/stepup-bridge/adapters/liveperson/lptest"
	"github.com/stepup-bridge/stepup-bridge/adapters/outbound"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
)

const ccsConv = "3f1a2b3c-0000-4000-8000-00000000cc5e"

func ccsConfig(f *lptest.Fake) config.LivePersonPlatform {
	cfg := platformConfig(f)
	cfg.CCS = config.LivePersonCCS{
		Enabled: true, AuthURL: f.CCSAuthURL(), URL: f.CCSURL(),
		Username:  config.Secret{Ref: "${LP_CCS_USER}", Value: lptest.DefaultCCSUser},
		Password:  config.Secret{Ref: "${LP_CCS_PASSWORD}", Value: lptest.DefaultCCSPassword},
		Namespace: "stepup", TTL: 30 * 24 * time.Hour,
	}
	return cfg
}

func ccsEntry() bridge.OutboxEntry {
	e := entry(bridge.EffectAttachIdentity, ccsConv, "")
	e.Consumer = "new-consumer"
	e.Identity = &bridge.Identity{Provider: "Acme login", Issuer: "https://login.acme.example", Subject: "user-42", Name: "Alice Example",
		Email: "alice@example.test", EmailVerified: true, AMR: []string{"pwd", "otp"}, ACR: "urn:acme:loa:2",
		VerifiedAt: time.Date(2026, 11, 26, 9, 0, 0, 0, time.FixedZone("CET", 3600))}
	return e
}

func TestCCSWritesStepUp(t *testing.T) {
	f := lptest.NewTest(t, lptest.Config{})
	a := newAdapter(t, f, ccsConfig(f), newClock())

	require.NoError(t, a.Deliver(context.Background(), ccsEntry()))
	docs := f.CCSDocuments()
	require.Len(t, docs, 1)
	d := docs[0]
	assert.Equal(t, f.Config().Account, d.AccountID)
	assert.Equal(t, "stepup", d.NameSpace)
	assert.Equal(t, ccsConv, d.SessionID, "sessionId is the conversation id")
	assert.Equal(t, int64(30*24*3600), d.TTLSeconds)
	// Only the step-up: no name, email or phone in CCS.
	assert.Equal(t, map[string]any{
		"stepped_up": true, "subject": "user-42", "provider": "Acme login",
		"amr": "pwd otp", "acr": "urn:acme:loa:2", "verified_at": "2026-11-26T08:00:00Z",
	}, d.Payload)
	assert.Empty(t, f.Violations())
	assert.Empty(t, f.Messages(), "native step-up: nothing else is called")
}

// TestCCSBodyMatchesSample: the request has the sample's fields, each of
// the same JSON type, and no other.
func TestCCSBodyMatchesSample(t *testing.T) {
	raw, err := os.ReadFile("testdata/ccs.v2.save-properties.request.json")
	require.NoError(t, err)
	f := lptest.NewTest(t, lptest.Config{})
	a := newAdapter(t, f, ccsConfig(f), newClock())
	require.NoError(t, a.Deliver(context.Background(), ccsEntry()))
	docs := f.CCSDocuments()
	require.Len(t, docs, 1)
	shape := func(data []byte) map[string]string {
		var m map[string]any
		require.NoError(t, json.Unmarshal(data, &m))
		out := map[string]string{}
		for k, v := range m {
			out[k] = fmt.Sprintf("%T", v)
		}
		return out
	}
	assert.Equal(t, shape(raw), shape(docs[0].Raw))
}

func TestCCSTokenReusedAndRefetchedOnce(t *testing.T) {
	f := lptest.NewTest(t, lptest.Config{})
	clk := newClock()
	a := newAdapter(t, f, ccsConfig(f), clk)
	ctx := context.Background()

	for range 3 {
		require.NoError(t, a.Deliver(ctx, ccsEntry()))
	}
	logins, creates := f.CCSCounts()
	assert.Equal(t, 1, logins, "one token for all calls")
	assert.Equal(t, 3, creates)

	// CCS refuses the token (401): one new login, the create succeeds.
	f.ExpireCCSTokens()
	require.NoError(t, a.Deliver(ctx, ccsEntry()))
	logins, creates = f.CCSCounts()
	assert.Equal(t, 2, logins)
	assert.Equal(t, 5, creates)

	// A 401 on the new token too: no second refetch (a 4xx, permanent).
	f.FailNext(lptest.EndpointCCSCreate, 401)
	f.FailNext(lptest.EndpointCCSCreate, 401)
	err := a.Deliver(ctx, ccsEntry())
	require.Error(t, err)
	assert.True(t, bridge.IsPermanent(err))
	logins, creates = f.CCSCounts()
	assert.Equal(t, 3, logins, "refetched once, not more")
	assert.Equal(t, 7, creates)

	// Replaced before it expires (an hour without a readable exp).
	clk.Advance(56 * time.Minute)
	require.NoError(t, a.Deliver(ctx, ccsEntry()))
	logins, _ = f.CCSCounts()
	assert.Equal(t, 4, logins)
	assert.Len(t, f.CCSDocuments(), 5)
	assert.Empty(t, f.Violations())
}

func TestCCSErrors(t *testing.T) {
	f := lptest.NewTest(t, lptest.Config{})
	a := newAdapter(t, f, ccsConfig(f), newClock())
	ctx := context.Background()

	for _, code := range []int{400, 403, 404, 409} {
		f.FailNext(lptest.EndpointCCSCreate, code)
		err := a.Deliver(ctx, ccsEntry())
		require.Error(t, err, code)
		assert.True(t, bridge.IsPermanent(err), "%d is permanent: %v", code, err)
	}
	for _, code := range []int{429, 500, 502, 503} {
		f.FailNext(lptest.EndpointCCSCreate, code)
		err := a.Deliver(ctx, ccsEntry())
		require.Error(t, err, code)
		assert.False(t, bridge.IsPermanent(err), "%d is retried: %v", code, err)
	}
	// The login failing: 5xx retried, wrong credentials permanent.
	f.ExpireCCSTokens()
	f.FailNext(lptest.EndpointCCSLogin, 503)
	err := a.Deliver(ctx, ccsEntry())
	require.Error(t, err)
	assert.False(t, bridge.IsPermanent(err))
	assert.Empty(t, f.CCSDocuments())

	cfg := ccsConfig(f)
	cfg.CCS.Password.Value = "wrong"
	bad := newAdapter(t, f, cfg, newClock())
	err = bad.Deliver(ctx, ccsEntry())
	require.Error(t, err)
	assert.True(t, bridge.IsPermanent(err))
	assert.NotContains(t, err.Error(), "wrong")

	// The token never shows in an error (it is in the query).
	require.NoError(t, a.Deliver(ctx, ccsEntry()))
	f.FailNext(lptest.EndpointCCSCreate, 500)
	err = a.Deliver(ctx, ccsEntry())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "access_token="+outbound.Redacted)
	assert.Empty(t, f.Violations())
}

func TestCCSDisabledMakesNoCall(t *testing.T) {
	f := lptest.NewTest(t, lptest.Config{})
	cfg := ccsConfig(f)
	cfg.CCS.Enabled = false
	a := newAdapter(t, f, cfg, newClock())
	require.NoError(t, a.Deliver(context.Background(), ccsEntry()))
	logins, creates := f.CCSCounts()
	assert.Zero(t, logins)
	assert.Zero(t, creates)
	assert.Empty(t, f.Violations())
}

func TestCCSEntryWithoutIdentity(t *testing.T) {
	f := lptest.NewTest(t, lptest.Config{})
	a := newAdapter(t, f, ccsConfig(f), newClock())
	e := ccsEntry()
	e.Identity = nil
	err := a.Deliver(context.Background(), e)
	require.Error(t, err)
	assert.True(t, bridge.IsPermanent(err))
	_, creates := f.CCSCounts()
	assert.Zero(t, creates)
}

func TestCCSConfigChecks(t *testing.T) {
	f := lptest.NewTest(t, lptest.Config{})
	for name, mod := range map[string]func(*config.LivePersonCCS){
		"no zone":      func(c *config.LivePersonCCS) { c.AuthURL, c.URL = "", "" },
		"bad zone":     func(c *config.LivePersonCCS) { c.AuthURL, c.URL, c.Zone = "", "", "z9" },
		"half urls":    func(c *config.LivePersonCCS) { c.URL = "" },
		"no password":  func(c *config.LivePersonCCS) { c.Password = config.Secret{} },
		"no namespace": func(c *config.LivePersonCCS) { c.Namespace = "" },
	} {
		cfg := ccsConfig(f)
		mod(&cfg.CCS)
		_, err := liveperson.New(cfg, liveperson.Options{})
		require.Error(t, err, name)
		assert.NotContains(t, err.Error(), lptest.DefaultCCSPassword)
	}
	// A zone gives LivePerson's hosts (nothing is called at New).
	cfg := ccsConfig(f)
	cfg.CCS.AuthURL, cfg.CCS.URL, cfg.CCS.Zone = "", "", "z2"
	_, err := liveperson.New(cfg, liveperson.Options{})
	require.NoError(t, err)
}

// TestEndToEndNativeStepUpCCS: the native flow with ccs on also writes the
// step-up to CCS, once, without personal data.
func TestEndToEndNativeStepUpCCS(t *testing.T) {
	h := newHarnessWith(t, "", harnessOpts{platform: func(cfg *config.LivePersonPlatform) {
		// The fake serves CCS on its one host, the domain API base.
		cfg.CCS = config.LivePersonCCS{
			Enabled: true, AuthURL: cfg.CSDSURL, URL: cfg.CSDSURL,
			Username:  config.Secret{Ref: "${LP_CCS_USER}", Value: lptest.DefaultCCSUser},
			Password:  config.Secret{Ref: "${LP_CCS_PASSWORD}", Value: lptest.DefaultCCSPassword},
			Namespace: "stepup", TTL: 30 * 24 * time.Hour,
		}
	}})
	testNativeStepUp(t, h, "")
	eventually(t, func() bool { return len(h.lp.CCSDocuments()) >= 1 }, "ccs document")
	time.Sleep(200 * time.Millisecond) // room for a wrong second write
	docs := h.lp.CCSDocuments()
	require.Len(t, docs, 1)
	p := docs[0].Payload
	assert.Equal(t, true, p["stepped_up"])
	assert.Equal(t, "user-42", p["subject"])
	assert.Equal(t, "Acme login", p["provider"])
	assert.Equal(t, "pwd otp", p["amr"])
	_, err := time.Parse(time.RFC3339, p["verified_at"].(string))
	assert.NoError(t, err)
	assert.NotContains(t, string(docs[0].Raw), "alice@example.test")
	assert.NotContains(t, string(docs[0].Raw), "Alice")
	assert.Empty(t, h.lp.Violations())
}
