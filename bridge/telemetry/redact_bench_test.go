package telemetry

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// scrubAll is Scrub without the literal pre-checks: every pattern runs on
// every text. Scrub must agree with it on everything.
func scrubAll(s string) string {
	if s == "" {
		return s
	}
	s = jwtRe.ReplaceAllString(s, redacted)
	s = bearerRe.ReplaceAllString(s, "$1 "+redacted)
	s = whsecRe.ReplaceAllString(s, redacted)
	s = emailRe.ReplaceAllString(s, redacted)
	s = phoneRe.ReplaceAllString(s, redacted)
	s = pathRe.ReplaceAllString(s, "${1}"+redacted)
	s = queryRe.ReplaceAllString(s, "${1}"+redacted)
	return s
}

var scrubFragments = []string{
	"acme", "conv-42", "msg_2Lh8x0S1bQm3yTz9", "/webhooks/acme/standard", " ", "\t", "\n", "\f", "\r", "\v",
	"Bearer ", "bearer", "BASIC", "basic  ", "abc.DEF-ghi_123", "eyJhbGciOiJSUzI1NiJ9", ".", "eyJzdWIiOiJ4In0",
	"whsec_", "whsk_", "whpk_", "wh", "sec_", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "@", "alex.morgan", "example.com",
	"+", "+44 20 7946 0958", "0123456789", "-", "/login/", "/callback/", "/login/acme/", "p12.AbCdEfGhIjKlMnOpQrSt",
	"?", "&", "=", "code=", "?state=", "&token=", "secret", "Key=", "ID_TOKEN=", "\"", "é", "日本",
	"BeArEr\t", "bAsIc\r", "baſic ", "beare", "bas", "B", "b", "K", "ſ", "Authorization: Basic dXNlcjpwYXNz",
}

func TestScrubMatchesTheUnfilteredPatterns(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		var b strings.Builder
		for range 1 + rng.IntN(12) {
			b.WriteString(scrubFragments[rng.IntN(len(scrubFragments))])
		}
		in := b.String()
		if got, want := Scrub(in), scrubAll(in); got != want {
			t.Fatalf("case %d: Scrub(%q) = %q, want %q", i, in, got, want)
		}
	}
}

// BenchmarkScrub: what every string attribute of every log line pays.
func BenchmarkScrub(b *testing.B) {
	for _, bc := range []struct{ name, in string }{
		{"id", "lg1234r-c4711"},
		{"route", "/webhooks/:brand/:platform"},
		{"error", "redisstore: observe: bridge: store unavailable: dial tcp 127.0.0.1:6379: connect: connection refused"},
		{"secrets", "GET /login/acme/p12.AbCdEfGhIjKlMnOpQrSt?code=abc&state=xyz Bearer eyJa.eyJb.sig alex@example.com"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = Scrub(bc.in)
			}
		})
	}
}

// BenchmarkLogLine is one access-log line through the redacting JSON
// handler, as the HTTP layer writes it per request.
func BenchmarkLogLine(b *testing.B) {
	log := NewLogger(io.Discard, "json", "info")
	b.ReportAllocs()
	for b.Loop() {
		log.With("request_id", "Zk3x9QbYt2aL").Info("http request", "method", "POST", "route", "/webhooks/:brand/:platform", "status", 200, "duration_ms", 0.412, "brand", "acme")
	}
}

// BenchmarkAccessLine is the access-log line as the HTTP layer writes it:
// typed attributes, the request id from the context.
func BenchmarkAccessLine(b *testing.B) {
	log := NewLogger(io.Discard, "json", "info")
	ctx := WithRequestID(context.Background(), "Zk3x9QbYt2aL")
	b.ReportAllocs()
	h := log.Handler()
	for b.Loop() {
		if h.Enabled(ctx, slog.LevelInfo) {
			r := slog.NewRecord(time.Now(), slog.LevelInfo, "http request", 0)
			r.AddAttrs(slog.String("method", "POST"), slog.String("route", "/webhooks/:brand/:platform"),
				slog.Int("status", 200), slog.Float64("duration_ms", 0.412), slog.String("brand", "acme"))
			_ = h.Handle(ctx, r)
		}
	}
}
