package idpevents

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// Keycloak has no webhooks of its own; the p2-inc/keycloak-events extension
// posts each event as JSON with X-Keycloak-Signature: the lowercase hex
// HMAC (HmacSHA256 by default) of that JSON, keyed by the shared secret
// (HttpSenderEventListenerProvider.java). The signature covers no URL and
// no timestamp other than the event's own time, so freshness is checked on
// that time.

// KeycloakSignatureHeader carries the hex HMAC-SHA256 of the raw body.
const KeycloakSignatureHeader = "X-Keycloak-Signature"

type keycloak struct {
	cfg   config.LoginEvents
	keys  [][]byte
	clock bridge.Clock
}

var _ bridge.LoginEventSource = (*keycloak)(nil)

func newKeycloak(cfg config.LoginEvents, o Options) (*keycloak, error) {
	if cfg.Realm == "" {
		return nil, errors.New("realm required")
	}
	k := &keycloak{cfg: cfg, clock: o.Clock}
	for i, s := range cfg.Secrets {
		if len(s.Value) < minSecretLen {
			return nil, fmt.Errorf("secrets[%d]: at least %d characters required", i, minSecretLen)
		}
		k.keys = append(k.keys, []byte(s.Value))
	}
	if len(k.keys) == 0 {
		return nil, errors.New("at least one secret is required")
	}
	return k, nil
}

func (*keycloak) Close() {}

// verify checks the signature on the raw body with every secret (rotation).
// Only HMAC-SHA256 is accepted: configure the extension's hmacAlgorithm as
// HmacSHA256 (its default), not HmacSHA1.
func (k *keycloak) verify(req bridge.WebhookRequest) error {
	v := req.Header.Values(KeycloakSignatureHeader)
	switch {
	case len(v) == 0 || v[0] == "":
		return unauthenticated("missing " + KeycloakSignatureHeader)
	case len(v) > 1:
		return unauthenticated("several " + KeycloakSignatureHeader + " headers")
	case len(v[0]) != 2*sha256.Size:
		return unauthenticated(KeycloakSignatureHeader + " is not a hex HMAC-SHA256")
	}
	got, err := hex.DecodeString(v[0])
	if err != nil {
		return unauthenticated(KeycloakSignatureHeader + " is not a hex HMAC-SHA256")
	}
	ok := false
	for _, key := range k.keys {
		m := hmac.New(sha256.New, key)
		m.Write(req.Body)
		// hmac.Equal: constant time; every key is tried either way.
		ok = hmac.Equal(got, m.Sum(nil)) || ok
	}
	if !ok {
		return unauthenticated("signature does not match")
	}
	return nil
}

type keycloakEvent struct {
	UID         string `json:"uid"`
	Type        string `json:"type"`
	Time        int64  `json:"time"` // milliseconds since the epoch
	RealmID     string `json:"realmId"`
	Error       string `json:"error"`
	AuthDetails struct {
		RealmID  string `json:"realmId"`
		ClientID string `json:"clientId"`
		UserID   string `json:"userId"`
	} `json:"authDetails"`
}

// Parse verifies the signature, then keeps an access.LOGIN event without
// error, from the configured realm (and client, if configured), within
// max_event_age. It is verified: the HMAC proves the realm's extension
// sent it. The subject is the Keycloak user id (the OIDC sub).
func (k *keycloak) Parse(_ context.Context, req bridge.WebhookRequest) ([]bridge.LoginRecord, error) {
	if err := k.verify(req); err != nil {
		return nil, err
	}
	var ev keycloakEvent
	if err := decodeJSON(req.Body, &ev); err != nil {
		return nil, err
	}
	if ev.Type == "" || ev.Time <= 0 {
		return nil, malformed("not a keycloak-events event (type, time)")
	}
	at := time.UnixMilli(ev.Time).UTC()
	switch {
	case ev.Type != "access.LOGIN", ev.Error != "",
		ev.RealmID != k.cfg.Realm && ev.AuthDetails.RealmID != k.cfg.Realm,
		len(k.cfg.ClientIDs) > 0 && !slices.Contains(k.cfg.ClientIDs, ev.AuthDetails.ClientID),
		!validSubject(ev.AuthDetails.UserID),
		!fresh(at, k.clock.Now(), k.cfg.MaxEventAge, k.cfg.Leeway):
		return nil, nil
	}
	return []bridge.LoginRecord{{
		Verified: true,
		At:       at,
		Identity: bridge.Identity{
			Provider:   k.cfg.Provider,
			Issuer:     k.cfg.Issuer,
			Subject:    ev.AuthDetails.UserID,
			VerifiedAt: at,
		},
	}}, nil
}
