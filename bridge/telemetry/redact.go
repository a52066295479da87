// Package telemetry holds the observability plumbing: a redacting slog
// handler (no tokens, codes, secrets or personal data in logs) and the
// Prometheus metrics (stepup_*).
package telemetry

import (
	"context"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"unicode/utf8"
)

const redacted = "[redacted]"

// sensitiveKeys are attribute names whose values never reach a log line,
// whatever they hold.
var sensitiveKeys = map[string]bool{
	"token": true, "id_token": true, "access_token": true, "refresh_token": true,
	"code": true, "confirm_code": true, "ticket": true, "cookie": true, "set-cookie": true,
	"secret": true, "client_secret": true, "password": true, "authorization": true,
	"api_key": true, "apikey": true, "nonce": true, "state": true, "verifier": true, "code_verifier": true,
	"email": true, "phone": true, "name": true, "signature": true,
}

var (
	emailRe  = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`)
	jwtRe    = regexp.MustCompile(`eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*`)
	bearerRe = regexp.MustCompile(`(?i)(bearer|basic)\s+[A-Za-z0-9._~+/=\-]+`)
	whsecRe  = regexp.MustCompile(`wh(sec|sk|pk)_[A-Za-z0-9+/=]+`)
	phoneRe  = regexp.MustCompile(`\+[0-9][0-9 \-]{7,}[0-9]`)
	// Login links and callbacks carry bearer values in the path or query.
	pathRe  = regexp.MustCompile(`(/(?:login|callback)/[^/\s?"]+/)[A-Za-z0-9_\-]{16,}`)
	queryRe = regexp.MustCompile(`(?i)([?&](?:code|code_verifier|state|nonce|token|id_token|access_token|refresh_token|ticket|key|api_key|apikey|secret|client_secret|password|sig|signature)=)[^&\s"]+`)
)

// Scrub removes secrets and personal data from free text (error strings,
// URLs) that may end up in a log line.
func Scrub(s string) string {
	if s == "" {
		return s
	}
	// Every pattern needs a literal that a matching text contains; testing
	// for it first keeps plain values (ids, routes, numbers: most attributes
	// of every log line) away from the regexp engine, which costs a
	// backtracking pass and a copy of the string even when nothing matches.
	if strings.Contains(s, "eyJ") {
		s = jwtRe.ReplaceAllString(s, redacted)
	}
	if mayHaveAuthScheme(s) {
		s = bearerRe.ReplaceAllString(s, "$1 "+redacted)
	}
	if mayHaveWebhookKey(s) {
		s = whsecRe.ReplaceAllString(s, redacted)
	}
	if strings.Contains(s, "@") {
		s = emailRe.ReplaceAllString(s, redacted)
	}
	if strings.Contains(s, "+") {
		s = phoneRe.ReplaceAllString(s, redacted)
	}
	if strings.Contains(s, "/login/") || strings.Contains(s, "/callback/") {
		s = pathRe.ReplaceAllString(s, "${1}"+redacted)
	}
	if strings.Contains(s, "=") {
		s = queryRe.ReplaceAllString(s, "${1}"+redacted)
	}
	return s
}

// mayHaveAuthScheme is a necessary condition for bearerRe: whitespace, and
// "bearer" or "basic" in any ASCII case. A text with any non-ASCII byte is
// left to the pattern, whose (?i) also folds letters such as U+017F (ſ).
func mayHaveAuthScheme(s string) bool {
	if !strings.ContainsAny(s, " \t\n\f\r") { // \s
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return true
		}
	}
	for i := 0; i < len(s); i++ {
		if s[i]|0x20 == 'b' && (hasFold(s[i:], "bearer") || hasFold(s[i:], "basic")) {
			return true
		}
	}
	return false
}

// mayHaveWebhookKey is a necessary condition for whsecRe: "wh" followed by
// "sec_", "sk_" or "pk_" ("wh" alone is in every webhook route).
func mayHaveWebhookKey(s string) bool {
	for {
		i := strings.Index(s, "wh")
		if i < 0 {
			return false
		}
		s = s[i+2:]
		if strings.HasPrefix(s, "sec_") || strings.HasPrefix(s, "sk_") || strings.HasPrefix(s, "pk_") {
			return true
		}
	}
}

// hasFold reports whether s starts with the lower-case ASCII word w in any case.
func hasFold(s, w string) bool {
	return len(s) >= len(w) && strings.EqualFold(s[:len(w)], w)
}

// RedactingHandler wraps a handler and scrubs every attribute.
type RedactingHandler struct{ next slog.Handler }

// NewRedactingHandler wraps next.
func NewRedactingHandler(next slog.Handler) *RedactingHandler { return &RedactingHandler{next: next} }

// Enabled implements slog.Handler.
func (h *RedactingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

// Handle implements slog.Handler.
func (h *RedactingHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, Scrub(r.Message), r.PC)
	if id := RequestID(ctx); id != "" {
		out.AddAttrs(slog.String("request_id", id))
	}
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

// WithAttrs implements slog.Handler.
func (h *RedactingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = redactAttr(a)
	}
	return &RedactingHandler{next: h.next.WithAttrs(clean)}
}

// WithGroup implements slog.Handler.
func (h *RedactingHandler) WithGroup(name string) slog.Handler {
	return &RedactingHandler{next: h.next.WithGroup(name)}
}

func redactAttr(a slog.Attr) slog.Attr {
	if sensitiveKeys[strings.ToLower(a.Key)] {
		return slog.String(a.Key, redacted)
	}
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, Scrub(v.String()))
	case slog.KindGroup:
		g := v.Group()
		clean := make([]slog.Attr, len(g))
		for i, ga := range g {
			clean[i] = redactAttr(ga)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(clean...)}
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, Scrub(err.Error()))
		}
		if s, ok := v.Any().(interface{ String() string }); ok {
			return slog.String(a.Key, Scrub(s.String()))
		}
		// Unknown structures could hold anything: print their type only.
		return slog.String(a.Key, "[object]")
	default:
		return slog.Attr{Key: a.Key, Value: v}
	}
}

// NewLogger builds the process logger: JSON (production) or text, always redacting.
func NewLogger(w io.Writer, format, level string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	if format == "text" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(NewRedactingHandler(h))
}
