// Package adapters connects the bridge to the outside: one sub-package per
// messaging platform and per identity-provider kind, and the one explicit
// table (type → factory) that builds them from configuration.
package adapters

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/stepup-bridge/stepup-bridge/adapters/idpevents"
	"github.com/stepup-bridge/stepup-bridge/adapters/liveperson"
	"github.com/stepup-bridge/stepup-bridge/adapters/oidc"
	"github.com/stepup-bridge/stepup-bridge/adapters/outbound"
	"github.com/stepup-bridge/stepup-bridge/adapters/standard"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// Deps are what every adapter may need.
type Deps struct {
	Logger *slog.Logger
	Clock  bridge.Clock
	// HTTPClient, when set, is the base for calls to IdPs (tests use it to
	// trust their own CAs); nil builds bounded default clients.
	HTTPClient *http.Client
	Outbox     config.Outbox
}

// PlatformFactory builds a platform adapter from its configuration.
type PlatformFactory func(ctx context.Context, pc config.Platform, d Deps) (bridge.Platform, error)

// IdentityFactory builds an identity provider from its configuration.
type IdentityFactory func(ctx context.Context, ic config.Identity, redirectURL string, d Deps) (bridge.IdentityProvider, error)

// platforms is the table of platform types. Adding a platform is one line
// here plus its settings type in config.
var platforms = map[string]PlatformFactory{
	"standard": func(_ context.Context, pc config.Platform, d Deps) (bridge.Platform, error) {
		o := standard.Options{Logger: d.Logger, Clock: d.Clock, CallTimeout: d.Outbox.CallTimeout}
		o.Outbound = outbound.Options{Logger: d.Logger}
		if d.HTTPClient != nil {
			o.Outbound.Transport = d.HTTPClient.Transport
		}
		return standard.New(*pc.Standard, o)
	},
	"liveperson": func(_ context.Context, pc config.Platform, d Deps) (bridge.Platform, error) {
		o := liveperson.Options{Logger: d.Logger, Clock: d.Clock, CallTimeout: d.Outbox.CallTimeout}
		o.Outbound = outbound.Options{Logger: d.Logger}
		if d.HTTPClient != nil {
			o.Outbound.Transport = d.HTTPClient.Transport
			if t, ok := d.HTTPClient.Transport.(*http.Transport); ok {
				o.TLSConfig = t.TLSClientConfig
			}
		}
		return liveperson.New(*pc.LivePerson, o)
	},
}

var identities = map[string]IdentityFactory{
	"oidc": func(ctx context.Context, ic config.Identity, redirectURL string, d Deps) (bridge.IdentityProvider, error) {
		return oidc.New(ctx, ic, redirectURL, oidc.Options{HTTPClient: d.HTTPClient, Clock: d.Clock, Logger: d.Logger})
	},
}

// loginEvents is the table of login-event provider types
// (POST /idp/{brand}/{provider}); see adapters/idpevents.
var loginEvents = map[string]func(ctx context.Context, lc config.LoginEvents, ic config.Identity, d Deps) (idpevents.Source, error){
	config.LoginEventsOkta:     newLoginEvents,
	config.LoginEventsAuth0:    newLoginEvents,
	config.LoginEventsKeycloak: newLoginEvents,
	config.LoginEventsJWT:      newLoginEvents,
}

func newLoginEvents(ctx context.Context, lc config.LoginEvents, ic config.Identity, d Deps) (idpevents.Source, error) {
	return idpevents.New(ctx, lc, idpevents.Options{Logger: d.Logger, Clock: d.Clock, HTTPClient: d.HTTPClient, Provider: ic.Name, Issuer: ic.Issuer})
}

// NewLoginEvents builds a brand's login-event sources by provider name (for
// bridge.Brand.LoginEvents) and a func that closes them all.
func NewLoginEvents(ctx context.Context, ic config.Identity, d Deps) (map[string]bridge.LoginEventSource, func(), error) {
	out := map[string]bridge.LoginEventSource{}
	var built []idpevents.Source
	closeAll := func() {
		for _, s := range built {
			s.Close()
		}
	}
	for _, lc := range ic.LoginEvents {
		f, ok := loginEvents[lc.Type]
		if !ok {
			closeAll()
			return nil, nil, fmt.Errorf("unknown login event type %q (known: %s)", lc.Type, strings.Join(config.LoginEventTypes(), ", "))
		}
		s, err := f(ctx, lc, ic, d)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("login event provider %s: %w", lc.ProviderName(), err)
		}
		built = append(built, s)
		out[lc.ProviderName()] = s
	}
	return out, closeAll, nil
}

// NewPlatform builds the adapter for pc.Type.
func NewPlatform(ctx context.Context, pc config.Platform, d Deps) (bridge.Platform, error) {
	f, ok := platforms[pc.Type]
	if !ok {
		return nil, fmt.Errorf("unknown platform type %q (known: %s)", pc.Type, strings.Join(PlatformTypes(), ", "))
	}
	return f(ctx, pc, d)
}

// NewIdentity builds the identity provider for ic.Type.
func NewIdentity(ctx context.Context, ic config.Identity, redirectURL string, d Deps) (bridge.IdentityProvider, error) {
	f, ok := identities[ic.Type]
	if !ok {
		return nil, fmt.Errorf("unknown identity type %q (known: oidc)", ic.Type)
	}
	return f(ctx, ic, redirectURL, d)
}

// PlatformTypes lists the known platform types.
func PlatformTypes() []string {
	var ts []string
	for t := range platforms {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	return ts
}
