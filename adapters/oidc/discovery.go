package oidc

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// discovery is the part of the OpenID Provider metadata the bridge uses.
type discovery struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	IssParameterSupported             bool     `json:"authorization_response_iss_parameter_supported"`

	authURL *url.URL
}

// discoveryURL is where the metadata of issuer lives (OIDC Discovery §4.1:
// a trailing slash of the issuer is removed before appending).
func discoveryURL(issuer string) string {
	return strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
}

// discover fetches and checks the provider metadata.
func (p *Provider) discover(ctx context.Context) (*discovery, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, discoveryURL(p.issuer), nil)
	if err != nil {
		return nil, fmt.Errorf("build discovery request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch discovery document: %w", err)
	}
	defer drain(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch discovery document: unexpected status %d", resp.StatusCode)
	}
	body, err := readLimited(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read discovery document: %w", err)
	}
	var d discovery
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, fmt.Errorf("decode discovery document: %w", err)
	}
	if err := d.check(p.issuer, p.allowHTTP); err != nil {
		return nil, fmt.Errorf("discovery document: %w", err)
	}
	p.warnMismatches(ctx, &d)
	return &d, nil
}

// check applies the rules the bridge relies on: the document is about the
// configured issuer (mix-up defence), its endpoints are https (http only
// when the issuer itself is http on loopback) and it supports code + S256.
func (d *discovery) check(issuer string, allowHTTP bool) error {
	if d.Issuer != issuer {
		return fmt.Errorf("issuer %q does not match the configured issuer %q", d.Issuer, issuer)
	}
	for _, e := range []struct{ name, value string }{
		{"authorization_endpoint", d.AuthorizationEndpoint},
		{"token_endpoint", d.TokenEndpoint},
		{"jwks_uri", d.JWKSURI},
	} {
		if e.value == "" {
			return fmt.Errorf("%s missing", e.name)
		}
		u, err := checkURL(e.value, allowHTTP)
		if err != nil {
			return fmt.Errorf("%s: %w", e.name, err)
		}
		if e.name == "authorization_endpoint" {
			d.authURL = u
		}
	}
	if d.ResponseTypesSupported != nil && !slices.Contains(d.ResponseTypesSupported, "code") {
		return fmt.Errorf("response_types_supported lacks %q", "code")
	}
	if d.CodeChallengeMethodsSupported != nil && !slices.Contains(d.CodeChallengeMethodsSupported, "S256") {
		return fmt.Errorf("code_challenge_methods_supported lacks %q", "S256")
	}
	return nil
}

// warnMismatches logs metadata that suggests logins will fail, without
// failing: providers often publish incomplete metadata.
func (p *Provider) warnMismatches(ctx context.Context, d *discovery) {
	if algs := d.IDTokenSigningAlgValuesSupported; algs != nil &&
		!slices.ContainsFunc(p.cfg.Algorithms, func(a string) bool { return slices.Contains(algs, a) }) {
		p.log.WarnContext(ctx, "oidc: the provider advertises none of the configured ID token algorithms",
			"idp", p.issuer, "configured", p.cfg.Algorithms, "advertised", algs)
	}
	if m := d.TokenEndpointAuthMethodsSupported; m != nil && !slices.Contains(m, "client_secret_basic") {
		p.log.WarnContext(ctx, "oidc: the provider does not advertise client_secret_basic, which the bridge uses",
			"idp", p.issuer, "advertised", m)
	}
}
