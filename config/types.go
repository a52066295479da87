// Package config is the YAML configuration of stepup-bridge: types, loading
// (defaults → YAML → environment references for secrets), strict decoding
// (unknown keys are errors) and validation that reports every problem at once
// with its YAML path.
package config

import "time"

// Config is the whole file.
type Config struct {
	Server Server  `yaml:"server"`
	Store  Store   `yaml:"store"`
	Brands []Brand `yaml:"brands"`

	// Warnings are non-fatal findings of Load/Parse (an inline secret,
	// binding none, no brands), for the caller to log or print.
	Warnings []Problem `yaml:"-" json:"-"`
}

// Server is the HTTP side.
type Server struct {
	// Listen is the address to bind, e.g. ":8080".
	Listen string `yaml:"listen"`
	// PublicURL is how consumers' browsers and platforms reach the bridge
	// (login links, OIDC redirect URI). https except on loopback.
	PublicURL         string        `yaml:"public_url"`
	TrustedProxies    []string      `yaml:"trusted_proxies"`
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	ShutdownTimeout   time.Duration `yaml:"shutdown_timeout"`
	MaxBodyBytes      int64         `yaml:"max_body_bytes"`
	MaxHeaderBytes    int           `yaml:"max_header_bytes"`
	LogFormat         string        `yaml:"log_format"` // json | text
	LogLevel          string        `yaml:"log_level"`  // debug | info | warn | error
}

// Store selects and tunes the state store.
type Store struct {
	Driver     string        `yaml:"driver"` // memory | redis
	Redis      Redis         `yaml:"redis"`
	SessionTTL time.Duration `yaml:"session_ttl"` // idle conversations are forgotten after this
	DedupeTTL  time.Duration `yaml:"dedupe_ttl"`  // how long event ids are remembered (>= platform retry horizon)
	Outbox     Outbox        `yaml:"outbox"`
}

// Redis is the connection for store.driver: redis. One address is a
// standalone server (or Sentinel with master_name), several a Cluster.
type Redis struct {
	Addrs        []string      `yaml:"addrs"`
	MasterName   string        `yaml:"master_name"`
	Username     string        `yaml:"username"`
	Password     Secret        `yaml:"password"`
	DB           int           `yaml:"db"`
	TLS          TLS           `yaml:"tls"`
	PoolSize     int           `yaml:"pool_size"`
	DialTimeout  time.Duration `yaml:"dial_timeout"`
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
}

// TLS for outbound connections. Verification cannot be switched off.
type TLS struct {
	Enabled    bool   `yaml:"enabled"`
	CAFile     string `yaml:"ca_file"`
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	ServerName string `yaml:"server_name"`
}

// Outbox tunes durable delivery.
type Outbox struct {
	Workers        int           `yaml:"workers"`
	MaxAttempts    int           `yaml:"max_attempts"`
	MinBackoff     time.Duration `yaml:"min_backoff"`
	MaxBackoff     time.Duration `yaml:"max_backoff"`
	CallTimeout    time.Duration `yaml:"call_timeout"`
	ClaimIdle      time.Duration `yaml:"claim_idle"` // a crashed worker's entries are reclaimed after this
	RetentionAfter time.Duration `yaml:"retention"`  // dead letters are kept this long
}

// Brand is one tenant.
type Brand struct {
	ID string `yaml:"id"`
	// APIKeys authenticate /api/v1/brands/{id}/...; several allow rotation.
	APIKeys   []Secret   `yaml:"api_keys"`
	Platforms []Platform `yaml:"platforms"`
	Identity  Identity   `yaml:"identity"`
	StepUp    StepUp     `yaml:"step_up"`
}

// Platform is one messaging platform of a brand: its type plus that type's
// settings (exactly one of the typed sections below is set, by type).
type Platform struct {
	Type       string              `yaml:"type"`
	Standard   *StandardPlatform   `yaml:"-"`
	LivePerson *LivePersonPlatform `yaml:"-"`
}

// StandardPlatform is the Standard Webhooks adapter.
type StandardPlatform struct {
	// WebhookSecrets verify inbound calls (whsec_…); several allow rotation.
	WebhookSecrets []Secret `yaml:"webhook_secrets"`
	// Tolerance is the replay window for webhook-timestamp.
	Tolerance time.Duration `yaml:"tolerance"`
	// Endpoint receives the bridge's outbound calls; EndpointSecret signs them.
	Endpoint       string `yaml:"endpoint"`
	EndpointSecret Secret `yaml:"endpoint_secret"`
}

// Identity is the brand's IdP.
type Identity struct {
	Type         string   `yaml:"type"` // oidc
	Name         string   `yaml:"name"` // shown to agents ("Acme login"); default: issuer host
	Issuer       string   `yaml:"issuer"`
	ClientID     string   `yaml:"client_id"`
	ClientSecret Secret   `yaml:"client_secret"`
	Scopes       []string `yaml:"scopes"`
	// Algorithms allowed for ID tokens (asymmetric only).
	Algorithms []string `yaml:"algorithms"`
	// ExtraAudiences may appear in aud besides client_id.
	ExtraAudiences []string `yaml:"extra_audiences"`
	// ExtraIssuers are other exact spellings of the issuer accepted in iss
	// (Google: accounts.google.com); discovery still pins issuer.
	ExtraIssuers []string      `yaml:"extra_issuers"`
	Leeway       time.Duration `yaml:"leeway"`
	MaxTokenAge  time.Duration `yaml:"max_token_age"`
	HTTPTimeout  time.Duration `yaml:"http_timeout"`
	Claims       ClaimMapping  `yaml:"claims"`
	// LoginEvents are the IdP's server-to-server login events, each at
	// POST /idp/{brand}/{name} (see config/idp.go). They record logins for
	// platform-native step-up; they never bind a conversation by themselves.
	LoginEvents []LoginEvents `yaml:"login_events"`
}

// ClaimMapping says which ID-token claims fill the identity.
type ClaimMapping struct {
	Subject string `yaml:"subject"` // default sub
	// Tenant, when set, names a claim that must be present and prefixes the
	// subject as "tenant:subject" (Entra: subject oid, tenant tid).
	Tenant string `yaml:"tenant"`
	// EmailSubject allows an email-like claim (email, upn,
	// preferred_username) as the subject; the token must then also carry
	// email_verified true. Off by default: emails are reassigned.
	EmailSubject bool   `yaml:"email_subject"`
	Name         string `yaml:"name"`  // default name
	Email        string `yaml:"email"` // default email
	// Extra maps identity attribute names (shown to agents, sent to the
	// platform) to claim names, e.g. customer_id: https://acme.example/customer_id.
	Extra map[string]string `yaml:"extra"`
}

// Binding modes.
const (
	BindingConfirmCode = "confirm-code"
	BindingNone        = "none"
)

// StepUp is the brand's policy.
type StepUp struct {
	LinkTTL      time.Duration `yaml:"link_ttl"`
	Binding      string        `yaml:"binding"`
	CodeTTL      time.Duration `yaml:"code_ttl"`
	CodeLength   int           `yaml:"code_length"`
	CodeAttempts int           `yaml:"code_attempts"`
	MaxLinks     int           `yaml:"max_links"` // per conversation
	// Channels allowed to step up; empty = all.
	Channels []string `yaml:"channels"`
	// AgentCommand typed by an agent issues and posts a link; "" disables.
	AgentCommand string `yaml:"agent_command"`
	// LinkMessage is the consumer message carrying the link (text/template, {{.URL}}).
	LinkMessage string `yaml:"link_message"`
	// NotifyAgents turns the agent-only step-up note on or off.
	NotifyAgents bool `yaml:"notify_agents"`
	// NotifyMessage is that note (text/template over the identity).
	NotifyMessage string `yaml:"notify_message"`
	// ConsumerMessage is posted to the consumer after the step-up ("" = none).
	ConsumerMessage string `yaml:"consumer_message"`
	// WrongCodeMessage, CodeLockedMessage and CodeExpiredMessage tell the
	// consumer what happened to a confirm code they typed ("" = say nothing).
	WrongCodeMessage   string `yaml:"wrong_code_message"`
	CodeLockedMessage  string `yaml:"code_locked_message"`
	CodeExpiredMessage string `yaml:"code_expired_message"`
	// Skill/queue to route a stepped-up conversation to ("" = none).
	Skill string `yaml:"skill"`
	// LoginWindow is how long a login recorded by the token endpoint or an
	// IdP login event waits for the platform's identity swap (native step-up).
	LoginWindow time.Duration `yaml:"login_window"`
}

// Secret is a value given as ${ENV_VAR}, file:/path, or (discouraged)
// inline. Ref is what the YAML said; Value is resolved by Load. Neither
// String nor the slog value ever shows the secret.
type Secret struct {
	Ref   string
	Value string
}
