package oidc

import (
	"context"
	"errors"

	"github.com/stepup-bridge/stepup-bridge/bridge"
)

var _ bridge.CodeRedeemer = (*Provider)(nil)

// RedeemCode redeems a code from an authorization request the bridge did
// not make: in LivePerson's code flow the brand's page logs the consumer in
// and LivePerson posts the code to the bridge's token endpoint. The code is
// exchanged with client_secret_basic and redirectURI (the one the page
// used) and no PKCE verifier, which the bridge never saw; the ID token is
// checked as in Redeem except the nonce, which the bridge did not choose.
// What binds the code to this client is the client secret and the IdP's
// single-use, short-lived code. Errors are as Redeem's.
func (p *Provider) RedeemCode(ctx context.Context, code, redirectURI string) (bridge.Identity, error) {
	st := p.state.Load()
	if st == nil {
		return bridge.Identity{}, reject("provider not ready", errors.Join(ErrNotReady, ErrUnavailable))
	}
	if code == "" {
		return bridge.Identity{}, reject("code missing", nil)
	}
	if _, err := checkURL(redirectURI, true); err != nil {
		return bridge.Identity{}, reject("redirect uri invalid", nil)
	}
	raw, err := p.exchange(ctx, st.doc.TokenEndpoint, code, "", redirectURI)
	if err != nil {
		return bridge.Identity{}, err
	}
	claims, err := st.verifier.Verify(ctx, raw)
	if err != nil {
		return bridge.Identity{}, err
	}
	return MapIdentity(claims, p.cfg.Claims, p.name, p.clock.Now())
}
