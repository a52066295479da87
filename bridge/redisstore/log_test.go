package redisstore

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

func TestUseLoggerFormat(t *testing.T) {
	var buf bytes.Buffer
	p := slogPrintf{slog.New(slog.NewJSONHandler(&buf, nil))}
	p.Printf(context.Background(), "connection pool: failed to dial after %d attempts: %s", 2, "refused")
	out := buf.String()
	for _, want := range []string{`"level":"WARN"`, `"msg":"redis client"`, `"detail":"connection pool: failed to dial after 2 attempts: refused"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log line %s lacks %s", out, want)
		}
	}
}
