package config

import "time"

// Defaults are applied before the YAML is decoded onto them, per list element
// for brands[] and per platform settings, so that a key absent from the file
// keeps its default and an explicit zero (notify_agents: false) wins.

func (c *Config) setDefaults() {
	c.Server.setDefaults()
	c.Store.setDefaults()
}

func (s *Server) setDefaults() {
	s.Listen = ":8080"
	// Slowloris protection: headers must arrive quickly.
	s.ReadHeaderTimeout = 5 * time.Second
	// Webhook bodies are small; a slow body is an attack or a broken client.
	s.ReadTimeout = 10 * time.Second
	// Handlers only do a store write before answering.
	s.WriteTimeout = 15 * time.Second
	s.IdleTimeout = 60 * time.Second
	// Below Kubernetes' default 30s grace period, so in-flight requests finish.
	s.ShutdownTimeout = 20 * time.Second
	// Platform webhooks are a few KiB; 1 MiB leaves room and bounds memory.
	s.MaxBodyBytes = 1 << 20
	s.MaxHeaderBytes = 64 << 10
	s.LogFormat = "json"
	s.LogLevel = "info"
}

func (s *Store) setDefaults() {
	// The embedded store needs nothing to run (one instance only).
	s.Driver = "memory"
	// 72h: LivePerson retries webhooks for up to 3 days; sessions and event
	// ids must outlive the longest platform retry.
	s.SessionTTL = 72 * time.Hour
	s.DedupeTTL = 72 * time.Hour
	s.Redis.setDefaults()
	s.Outbox.setDefaults()
}

func (r *Redis) setDefaults() {
	// PoolSize 0 leaves go-redis' default (10 per CPU).
	r.PoolSize = 0
	// go-redis' own defaults, stated so they show in a config dump.
	r.DialTimeout = 5 * time.Second
	r.ReadTimeout = 3 * time.Second
	r.WriteTimeout = 3 * time.Second
}

func (o *Outbox) setDefaults() {
	o.Workers = 4
	// Exponential backoff from 1s, capped at 1h, jittered over the upper
	// half: 110 attempts span about three days (49 to 98 hours), the
	// horizon over which LivePerson retries its own webhooks, so a platform
	// outage of a day or two heals by itself. After the last attempt the
	// entry goes to the dead-letter stream, not away.
	o.MaxAttempts = 110
	o.MinBackoff = time.Second
	o.MaxBackoff = time.Hour
	o.CallTimeout = 10 * time.Second
	// Well above CallTimeout so a slow call is not claimed while in flight.
	o.ClaimIdle = 60 * time.Second
	// A week for an operator to inspect and replay dead letters.
	o.RetentionAfter = 7 * 24 * time.Hour
}

func (b *Brand) setDefaults() {
	b.Identity.setDefaults()
	b.StepUp.setDefaults()
}

func (i *Identity) setDefaults() {
	i.Type = "oidc"
	i.Scopes = []string{"openid", "profile", "email"}
	// The algorithms nearly every IdP signs with; asymmetric only.
	i.Algorithms = []string{"RS256", "ES256"}
	// Small clock skew allowance (RFC 8725: keep it small).
	i.Leeway = 30 * time.Second
	// A login older than this is not a fresh step-up.
	i.MaxTokenAge = 10 * time.Minute
	i.HTTPTimeout = 10 * time.Second
	i.Claims = ClaimMapping{Subject: "sub", Name: "name", Email: "email"}
	// Name defaults to the issuer's host, after decoding (see derive).
}

func (s *StepUp) setDefaults() {
	// Long enough to find a password, short enough that a leaked link dies.
	s.LinkTTL = 10 * time.Minute
	// The safe binding: the login completes only when its code comes back
	// in the same conversation (DESIGN §6).
	s.Binding = BindingConfirmCode
	s.CodeTTL = 5 * time.Minute
	s.CodeLength = 6
	s.CodeAttempts = 3
	s.MaxLinks = 5
	s.AgentCommand = "/verify"
	s.LinkMessage = "Please verify your identity here: {{.URL}}"
	s.NotifyAgents = true
	s.NotifyMessage = "Consumer verified: {{.Name}} ({{.Subject}}) via {{.Provider}} at {{.VerifiedAt}}"
	s.ConsumerMessage = "Thanks, you are now verified."
	// A consumer who typed a code must learn what became of it.
	s.WrongCodeMessage = "That code does not match. Please check the code on the sign-in page and type it again."
	s.CodeLockedMessage = "Too many wrong codes: that sign-in was cancelled for your security. Please ask for a new sign-in link."
	s.CodeExpiredMessage = "That code has expired. Please ask for a new sign-in link."
	// A platform swaps the consumer seconds after the login; half an hour
	// covers a slow consumer without keeping logins around for long.
	s.LoginWindow = 30 * time.Minute
}

func (p *StandardPlatform) setDefaults() {
	// Standard Webhooks' recommended replay window.
	p.Tolerance = 5 * time.Minute
}
