package config

import (
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

// LivePersonPlatform is the LivePerson Conversational Cloud adapter
// (messaging only): the app install whose webhooks the bridge receives, the
// bot user it logs in as to read consumer profiles and notify agents, and
// the authentication connector (code flow) it serves at /token/{brand}.
type LivePersonPlatform struct {
	// AccountID is the LivePerson account (site) id; inbound webhooks must
	// carry it in x-liveperson-account-id.
	AccountID string `yaml:"account_id"`
	// ClientID and ClientSecret are the app install's credentials: webhooks
	// carry the id in x-liveperson-client-id and are signed with the secret.
	ClientID     string `yaml:"client_id"`
	ClientSecret Secret `yaml:"client_secret"`
	// CSDSURL is the domain API base (service discovery).
	CSDSURL string `yaml:"csds_url"`
	// Agent is the bot user the bridge logs in as (agent login, messaging
	// websocket): to read a stepped-up consumer's profile, post agent-only
	// notes and transfer skills. Without it step-ups are not detected.
	Agent LivePersonAgent `yaml:"agent"`
	// ProfileTimeout bounds the profile lookup made while a swap webhook
	// waits (LivePerson disables apps slower than 2.5s).
	ProfileTimeout time.Duration `yaml:"profile_timeout"`
	// Connector is the authentication connector (code flow) the bridge
	// serves at /token/{brand} and /jwks/{brand}.
	Connector LivePersonConnector `yaml:"connector"`
	// ConnectorAPI attaches a bridge-driven login to the consumer of a
	// channel the brand connects through LivePerson's Connector API.
	ConnectorAPI LivePersonConnectorAPI `yaml:"connector_api"`
	// CCS writes the step-up to LivePerson's Conversation Context Service
	// as well (a document per conversation), for bots and routing rules.
	CCS LivePersonCCS `yaml:"ccs"`
}

// LivePersonCCS is the optional Conversation Context Service (CCS v2)
// property: with it, attach_identity also creates a CCS document in
// Namespace for the conversation (sessionId = conversation id) saying it
// was stepped up: subject, IdP, amr, acr and the time. No name, email or
// phone goes there.
type LivePersonCCS struct {
	Enabled bool `yaml:"enabled"`
	// Zone is the Conversation Orchestrator zone: z1 (Americas), z2
	// (EMEA) or z3 (APAC).
	Zone string `yaml:"zone"`
	// AuthURL and URL replace the zone's token service
	// (https://{zone}.context.liveperson.net) and CCS
	// (https://{zone}.ccs.liveperson.net) bases; tests only.
	AuthURL string `yaml:"auth_url"`
	URL     string `yaml:"url"`
	// Username and Password are the v2 API credentials of Conversation
	// Orchestrator's "API Authorization" page.
	Username Secret `yaml:"username"`
	Password Secret `yaml:"password"`
	// Namespace is the brand's own CCS namespace ([A-Za-z0-9_], not a
	// reserved one).
	Namespace string `yaml:"namespace"`
	// TTL is the document's ttlSeconds (CCS keeps 13 months at most).
	TTL time.Duration `yaml:"ttl"`
}

// LivePersonCCSReserved are the namespaces CCS reserves for itself.
var LivePersonCCSReserved = []string{"consumer", "operational", "conversation", "faas", "custom", "sde"}

// LivePersonCCSMaxTTL is CCS's 13-month retention counted as 13×30 days:
// the shortest reading of "13 months", so that CCS never refuses it.
const LivePersonCCSMaxTTL = 13 * 30 * 24 * time.Hour

// LivePersonCCSDefaultTTL is the default document lifetime.
const LivePersonCCSDefaultTTL = 30 * 24 * time.Hour

var lpNamespace = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

func (c *LivePersonCCS) validate(r *collector, path string) {
	if !c.Enabled {
		return
	}
	if c.AuthURL == "" && c.URL == "" {
		oneOf(r, join(path, "zone"), c.Zone, "z1", "z2", "z3")
	} else {
		if c.Zone != "" {
			r.errorf(join(path, "zone"), "not with auth_url and url")
		}
		checkURL(r, join(path, "auth_url"), c.AuthURL)
		checkURL(r, join(path, "url"), c.URL)
	}
	if !unresolved(c.Username) && !c.Username.IsSet() {
		r.errorf(join(path, "username"), "required: the v2 user of Conversation Orchestrator's API Authorization page (${ENV} or file:)")
	}
	if !unresolved(c.Password) && !c.Password.IsSet() {
		r.errorf(join(path, "password"), "required (${ENV} or file:)")
	}
	switch ns := join(path, "namespace"); {
	case !lpNamespace.MatchString(c.Namespace):
		r.errorf(ns, "required: letters, digits and _ (e.g. stepup)")
	case slices.Contains(LivePersonCCSReserved, strings.ToLower(c.Namespace)):
		r.errorf(ns, "%q is reserved by LivePerson (%s)", c.Namespace, strings.Join(LivePersonCCSReserved, ", "))
	}
	between(r, join(path, "ttl"), c.TTL, time.Hour, LivePersonCCSMaxTTL)
}

// LivePersonConnectorAPI is LivePerson's Connector API (Send API) used on
// behalf of the consumer of a brand's own connector, for bridge-driven
// step-up: once the consumer logged in through the bridge's link, the
// bridge sends a SEND userprofile.SetUserProfile with the verified
// identity's SDEs (authenticatedData.lp_sdes) as that consumer. The Send
// API speaks as the consumer, so it carries nothing *to* the consumer: the
// login link is posted on the agent side (agent user) and reaches the
// consumer through the brand connector's webhooks.
type LivePersonConnectorAPI struct {
	Enabled bool `yaml:"enabled"`
	// ClientID and ClientSecret are the app install of the brand's
	// connector (scope msg.consumer), for Sentinel's client_credentials.
	// LivePerson's IdP maps an ext_consumer_id to the conversation's
	// consumer for that install. Empty: the platform's client_id and
	// client_secret.
	ClientID     string `yaml:"client_id"`
	ClientSecret Secret `yaml:"client_secret"`
	// ExtConsumerIDSDE is the ctmrinfo field (e.g. ctmrinfo.socialId) in
	// which the brand's connector puts the consumer's ext_consumer_id when
	// it opens the conversation (CONVERSATION's SetUserProfile). LivePerson
	// never tells the bridge a Connector API consumer's ext_consumer_id in
	// any other way; the bridge reads it from the consumer's profile and
	// checks that the ConsumerJWS it gets names the conversation's consumer.
	ExtConsumerIDSDE string `yaml:"ext_consumer_id_sde"`
	// SDEs adds mapped SDEs (sde path: attribute) next to
	// ctmrinfo.customerId, which is always the subject; as connector.sdes.
	SDEs map[string]string `yaml:"sdes"`
}

// LivePersonAgent is a LivePerson user: username with password, or with an
// API key (OAuth 1 app key, secret, access token, access token secret).
type LivePersonAgent struct {
	Username          string `yaml:"username"`
	Password          Secret `yaml:"password"`
	AppKey            string `yaml:"app_key"`
	Secret            Secret `yaml:"secret"`
	AccessToken       string `yaml:"access_token"`
	AccessTokenSecret Secret `yaml:"access_token_secret"`
}

// LivePersonConnector is the brand's "Consumer Identity Provider" in
// LivePerson (code flow): LivePerson posts the consumer's authorization code
// with Basic client_id:client_secret; the bridge redeems it at the brand's
// IdP and answers with an RS256 id_token it signs.
type LivePersonConnector struct {
	// Enabled serves /token/{brand} and /jwks/{brand}.
	Enabled      bool   `yaml:"enabled"`
	ClientID     string `yaml:"client_id"`
	ClientSecret Secret `yaml:"client_secret"`
	// Issuer is the iss of the minted id_token; it must equal the iss the
	// brand's page gives lpTag.identities.
	Issuer string `yaml:"issuer"`
	// TokenTTL is the id_token lifetime (LivePerson asks for a new one on expiry).
	TokenTTL time.Duration `yaml:"token_ttl"`
	// RedirectURI is sent to the IdP with the code; it must be the one the
	// brand's page used when it got the code. Empty: the redirect_uri that
	// LivePerson sends.
	RedirectURI string `yaml:"redirect_uri"`
	// SigningKeys are RSA private keys (PEM). The first signs; all are
	// published at /jwks/{brand}. Rotate by adding the new key last, moving
	// it first once LivePerson has fetched it, and removing the old one
	// after token_ttl.
	SigningKeys []LivePersonKey `yaml:"signing_keys"`
	// DevGenerateKey signs with a key generated at start-up (development
	// only: every restart and replica has another key).
	DevGenerateKey bool `yaml:"dev_generate_key"`
	// Claims adds id_token claims from identity attributes (claim:
	// attribute): subject, name, email, provider, or an identity.claims.extra
	// name. Defaults: email and name.
	Claims map[string]string `yaml:"claims"`
	// SDEs fills lp_sdes (sde path: attribute), e.g. personal.firstname:
	// given_name or ctmrinfo.userName: username. ctmrinfo.customerId is
	// always the subject (the bridge correlates the step-up on it).
	SDEs map[string]string `yaml:"sdes"`
}

// LivePersonKey is one signing key.
type LivePersonKey struct {
	// ID is the JWK kid; empty: the key's RFC 7638 thumbprint.
	ID         string `yaml:"id"`
	PrivateKey Secret `yaml:"private_key"`
}

func (p *LivePersonPlatform) setDefaults() {
	p.CSDSURL = "https://api.liveperson.net"
	// Well inside LivePerson's 2.5s budget for a webhook answer.
	p.ProfileTimeout = 1500 * time.Millisecond
	// An hour, as LivePerson's own app tokens.
	p.Connector.TokenTTL = time.Hour
	p.CCS.TTL = LivePersonCCSDefaultTTL
}

// LivePersonSDEFields are the lp_sdes fields the authenticated flow
// supports (reference liveperson.md §3.8), by SDE.
var LivePersonSDEFields = map[string][]string{
	"ctmrinfo": {"cstatus", "ctype", "balance", "currency", "socialId", "imei", "userName", "companySize", "companyBranch", "accountName", "role"},
	"personal": {"firstname", "lastname", "gender", "company", "language", "email", "phone"},
}

// LivePersonClaims are the id_token claims a brand may map.
var LivePersonClaims = []string{"given_name", "family_name", "email", "phone_number", "preferred_username", "gender", "name"}

var lpAccountID = regexp.MustCompile(`^[A-Za-z0-9]{1,32}$`)

func (p *LivePersonPlatform) validate(r *collector, path string) {
	if !lpAccountID.MatchString(p.AccountID) {
		r.errorf(join(path, "account_id"), "required: the LivePerson account (site) id, letters and digits")
	}
	if p.ClientID == "" {
		r.errorf(join(path, "client_id"), "required: the app install client_id")
	}
	if !unresolved(p.ClientSecret) && !p.ClientSecret.IsSet() {
		r.errorf(join(path, "client_secret"), "required: the app install client_secret (${ENV} or file:)")
	}
	checkURL(r, join(path, "csds_url"), p.CSDSURL)
	between(r, join(path, "profile_timeout"), p.ProfileTimeout, 100*time.Millisecond, 2*time.Second)
	a, ap := p.Agent, join(path, "agent")
	password := a.Password.Ref != "" || a.Password.IsSet()
	apiKey := a.AppKey != "" || a.Secret.Ref != "" || a.AccessToken != "" || a.AccessTokenSecret.Ref != ""
	switch {
	case a.Username == "" && (password || apiKey):
		r.errorf(join(ap, "username"), "required with a password or an API key")
	case password && apiKey:
		r.errorf(ap, "give a password or an API key, not both")
	case apiKey && (a.AppKey == "" || a.AccessToken == "" || a.Secret.Ref == "" || a.AccessTokenSecret.Ref == ""):
		r.errorf(ap, "an API key needs app_key, secret, access_token and access_token_secret")
	case a.Username != "" && !password && !apiKey:
		r.errorf(ap, "a password or an API key is required")
	case a.Username == "":
		r.warnf(ap, "no agent user: step-ups are not detected and agents are not notified")
	}
	p.Connector.validate(r, join(path, "connector"))
	p.ConnectorAPI.validate(r, join(path, "connector_api"), a.Username != "")
	p.CCS.validate(r, join(path, "ccs"))
}

func (c *LivePersonConnectorAPI) validate(r *collector, path string, agent bool) {
	if !c.Enabled {
		return
	}
	if !agent {
		r.errorf(path, "needs the agent user: the consumer's ext_consumer_id is read from its profile")
	}
	secret := c.ClientSecret.Ref != "" || c.ClientSecret.IsSet()
	if (c.ClientID == "") != !secret {
		r.errorf(path, "client_id and client_secret go together (the connector's app install), or neither for the platform's")
	}
	field, ok := strings.CutPrefix(c.ExtConsumerIDSDE, "ctmrinfo.")
	if !ok || !slices.Contains(LivePersonSDEFields["ctmrinfo"], field) {
		r.errorf(join(path, "ext_consumer_id_sde"), "required: the ctmrinfo field the brand's connector puts the ext_consumer_id in (ctmrinfo.<%s>)",
			strings.Join(LivePersonSDEFields["ctmrinfo"], "|"))
	}
	validateSDEs(r, join(path, "sdes"), c.SDEs)
	if _, clash := c.SDEs[c.ExtConsumerIDSDE]; clash && ok {
		r.errorf(join(join(path, "sdes"), c.ExtConsumerIDSDE), "holds the ext_consumer_id (ext_consumer_id_sde)")
	}
}

func (c *LivePersonConnector) validate(r *collector, path string) {
	if !c.Enabled {
		return
	}
	if c.ClientID == "" {
		r.errorf(join(path, "client_id"), "required: the client id configured in LivePerson's authentication connector")
	}
	if !unresolved(c.ClientSecret) && !c.ClientSecret.IsSet() {
		r.errorf(join(path, "client_secret"), "required (${ENV} or file:)")
	}
	if c.Issuer == "" {
		r.errorf(join(path, "issuer"), "required: the iss the brand's page gives lpTag.identities")
	}
	between(r, join(path, "token_ttl"), c.TokenTTL, time.Minute, 24*time.Hour)
	if c.RedirectURI != "" {
		checkURL(r, join(path, "redirect_uri"), c.RedirectURI)
	}
	keys := join(path, "signing_keys")
	switch {
	case len(c.SigningKeys) == 0 && !c.DevGenerateKey:
		r.errorf(keys, "at least one RSA private key (PEM, file:) is required")
	case len(c.SigningKeys) > 0 && c.DevGenerateKey:
		r.errorf(join(path, "dev_generate_key"), "not with signing_keys")
	case c.DevGenerateKey:
		r.warnf(join(path, "dev_generate_key"), "development only: each start and each replica signs with another key")
	}
	seen := map[string]bool{}
	for i, k := range c.SigningKeys {
		kp := index(keys, i)
		if !unresolved(k.PrivateKey) && !k.PrivateKey.IsSet() {
			r.errorf(join(kp, "private_key"), "required (file: with a PEM RSA private key)")
		}
		if k.ID != "" {
			if seen[k.ID] {
				r.errorf(join(kp, "id"), "duplicate key id %q", k.ID)
			}
			seen[k.ID] = true
		}
	}
	for _, claim := range slices.Sorted(maps.Keys(c.Claims)) {
		if !slices.Contains(LivePersonClaims, claim) {
			r.errorf(join(join(path, "claims"), claim), "unknown claim (known: %s)", strings.Join(LivePersonClaims, ", "))
		} else if c.Claims[claim] == "" {
			r.errorf(join(join(path, "claims"), claim), "attribute name required")
		}
	}
	validateSDEs(r, join(path, "sdes"), c.SDEs)
}

// validateSDEs checks an sde path → attribute mapping.
func validateSDEs(r *collector, path string, sdes map[string]string) {
	for _, sde := range slices.Sorted(maps.Keys(sdes)) {
		typ, field, _ := strings.Cut(sde, ".")
		p := join(path, sde)
		switch {
		case sde == "ctmrinfo.customerId":
			r.errorf(p, "always the subject: the bridge recognises the stepped-up consumer by it")
		case !slices.Contains(LivePersonSDEFields[typ], field):
			r.errorf(p, "not an SDE field supported in the authenticated flow (ctmrinfo.<%s> or personal.<%s>)",
				strings.Join(LivePersonSDEFields["ctmrinfo"], "|"), strings.Join(LivePersonSDEFields["personal"], "|"))
		case sdes[sde] == "":
			r.errorf(p, "attribute name required")
		}
	}
}
