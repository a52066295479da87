package outbound

import (
	"context"
	"log/slog"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// Redacted replaces secret parts of URLs.
const Redacted = "REDACTED"

// RedactURL returns u fit for logs and error text: no userinfo, every query
// value replaced by REDACTED (names kept), no fragment. Tokens in URLs are
// a mistake, but a platform API that wants one must not leak it
// (go-retryablehttp #206).
func RedactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	r := *u
	r.User = nil
	r.Fragment, r.RawFragment = "", ""
	if r.RawQuery != "" || r.ForceQuery {
		r.RawQuery = redactQuery(r.RawQuery)
		r.ForceQuery = false
	}
	return r.String()
}

func redactQuery(raw string) string {
	if raw == "" {
		return ""
	}
	q, err := url.ParseQuery(raw)
	if err != nil || len(q) == 0 {
		return Redacted
	}
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for i, k := range names {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(k))
		b.WriteByte('=')
		b.WriteString(Redacted)
	}
	return b.String()
}

// redactRaw redacts a URL given as text; if it does not parse, only its
// scheme and host part survive (or nothing).
func redactRaw(s string) string {
	u, err := url.Parse(s)
	if err == nil {
		return RedactURL(u)
	}
	if i := strings.Index(s, "://"); i > 0 {
		rest := s[i+3:]
		if j := strings.IndexAny(rest, "/?#"); j >= 0 {
			rest = rest[:j]
		}
		if j := strings.LastIndexByte(rest, '@'); j >= 0 {
			rest = rest[j+1:]
		}
		return s[:i+3] + rest + "/" + Redacted
	}
	return Redacted
}

var urlInText = regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.\-]*://[^\s"'<>` + "`" + `]+`)

// RedactText redacts every URL found in free text (error messages from the
// HTTP stack quote the full request URL).
func RedactText(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	return urlInText.ReplaceAllStringFunc(s, redactRaw)
}

// leveledLogger adapts slog to go-retryablehttp's LeveledLogger, redacting
// URLs in every string and error value. go-retryablehttp logs each failed
// attempt at Error; here that is Warn, since the caller (the outbox) decides
// whether the call as a whole failed.
type leveledLogger struct{ l *slog.Logger }

func (g leveledLogger) Error(msg string, kv ...any) { g.log(slog.LevelWarn, msg, kv) }
func (g leveledLogger) Warn(msg string, kv ...any)  { g.log(slog.LevelWarn, msg, kv) }
func (g leveledLogger) Info(msg string, kv ...any)  { g.log(slog.LevelInfo, msg, kv) }
func (g leveledLogger) Debug(msg string, kv ...any) { g.log(slog.LevelDebug, msg, kv) }

func (g leveledLogger) log(level slog.Level, msg string, kv []any) {
	ctx := context.Background()
	if !g.l.Enabled(ctx, level) {
		return
	}
	out := make([]any, len(kv))
	for i, v := range kv {
		switch v := v.(type) {
		case string:
			out[i] = RedactText(v)
		case error:
			out[i] = RedactText(v.Error())
		case *url.URL:
			out[i] = RedactURL(v)
		default:
			out[i] = v
		}
	}
	g.l.Log(ctx, level, "outbound: "+msg, out...)
}
