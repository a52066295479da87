package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/adapters/oidc/oidctest"
	"github.com/stepup-bridge/stepup-bridge/adapters/standard"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore/redistest"
	"github.com/stepup-bridge/stepup-bridge/bridge/telemetry"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// BenchmarkWebhook is the whole inbound path of one webhook inside the
// bridge as main wires it (build(): gin router and middleware, access
// log at info to a discarding writer, metrics, the standard adapter, the
// service, the store), without the network: each op is one signed
// consumer message or conversation start handed to the router. Requests
// are built before the timer starts, so allocs/op are the server's alone.
// The redis variants use the shared Redis under a fresh key prefix.
//
//	go test -run '^$' -bench Webhook -benchmem ./cmd/stepup-bridge/
//	go test -run '^$' -bench 'Webhook/redis/serial' -cpuprofile cpu.out ./cmd/stepup-bridge/
func BenchmarkWebhook(b *testing.B) {
	for _, driver := range []string{"memory", "redis"} {
		b.Run(driver, func(b *testing.B) {
			app, secret := benchApp(b, driver)
			b.Run("serial", func(b *testing.B) { benchWebhooks(b, app, secret, false) })
			b.Run("parallel", func(b *testing.B) { benchWebhooks(b, app, secret, true) })
		})
	}
}

// benchSeq keeps every event id and conversation new across rounds.
var benchSeq atomic.Int64

func benchApp(b *testing.B, driver string) (*App, []byte) {
	b.Helper()
	idp := oidctest.NewTest(b, oidctest.Config{})
	secret := newBenchSecret(b)
	env := map[string]string{"BENCH_WEBHOOK_SECRET": secret, "BENCH_IDP_SECRET": idp.ClientSecret()}
	store := "  driver: memory\n"
	prefix := ""
	if driver == "redis" {
		c := redistest.Client(b, redistest.StandaloneAddr())
		prefix = redistest.Prefix(b, c)
		store = fmt.Sprintf("  driver: redis\n  redis:\n    addrs: [%q]\n", redistest.StandaloneAddr())
	}
	yaml := fmt.Sprintf(`server:
  listen: "127.0.0.1:0"
  public_url: "http://127.0.0.1:8080"
  log_format: json
  log_level: info
store:
%sbrands:
  - id: acme
    platforms:
      - type: standard
        webhook_secrets: ["${BENCH_WEBHOOK_SECRET}"]
    identity:
      type: oidc
      issuer: %s
      client_id: %s
      client_secret: ${BENCH_IDP_SECRET}
`, store, idp.Issuer(), idp.ClientID())
	cfg, err := config.Parse([]byte(yaml), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		b.Fatalf("config: %v\n%s", err, yaml)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	app, err := build(ctx, cfg, telemetry.NewLogger(io.Discard, "json", "info"), buildOptions{HTTPClient: idp.Client(), RedisPrefix: prefix})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(app.Close)
	key, err := standard.ParseSecret(secret)
	if err != nil {
		b.Fatal(err)
	}
	return app, key
}

func newBenchSecret(b *testing.B) string {
	b.Helper()
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	return standard.SecretPrefix + base64.StdEncoding.EncodeToString(raw)
}

// benchRequest is a signed consumer message (one in ten a conversation
// start) over 1000 conversations.
func benchRequest(key []byte, now time.Time) *http.Request {
	n := benchSeq.Add(1)
	conv := "bench-c" + strconv.FormatInt(n%1000, 10)
	typ, author := "message.created", `,"author":{"role":"consumer","id":"anon-`+conv+`"},"text":"I was charged twice for the same order, can you check please"`
	if n%10 == 0 {
		typ, author = "conversation.started", ""
	}
	body := []byte(`{"type":"` + typ + `","timestamp":"` + now.UTC().Format(time.RFC3339Nano) + `","data":{"conversation_id":"` + conv + `","consumer_id":"anon-` + conv + `","channel":"web"` + author + `}}`)
	r, _ := http.NewRequest(http.MethodPost, "/webhooks/acme/standard", bytes.NewReader(body))
	r.RemoteAddr = "127.0.0.1:40000"
	r.Header.Set("Content-Type", "application/json")
	standard.SignHeader(r.Header, key, "msg_bench_"+strconv.FormatInt(n, 10), now, body)
	return r
}

// benchWriter is a reusable ResponseWriter that keeps only the status.
type benchWriter struct {
	h    http.Header
	code int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *benchWriter) WriteHeader(code int)        { w.code = code }

func benchWebhooks(b *testing.B, app *App, key []byte, parallel bool) {
	now := time.Now()
	reqs := make([]*http.Request, b.N)
	for i := range reqs {
		reqs[i] = benchRequest(key, now)
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	one := func(w *benchWriter) {
		r := reqs[next.Add(1)-1]
		clear(w.h)
		w.code = http.StatusOK
		app.Handler.ServeHTTP(w, r)
		if w.code != http.StatusOK {
			b.Errorf("status %d", w.code)
		}
	}
	if !parallel {
		w := &benchWriter{h: http.Header{}}
		for range b.N {
			one(w)
		}
		return
	}
	b.SetParallelism(8) // callers overlap their Redis round trips
	b.RunParallel(func(pb *testing.PB) {
		w := &benchWriter{h: http.Header{}}
		for pb.Next() {
			one(w)
		}
	})
}
