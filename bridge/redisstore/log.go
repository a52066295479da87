package redisstore

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// UseLogger sends go-redis' own messages (failed dials, Sentinel and
// Cluster topology changes) to l at Warn level instead of the standard
// library logger on stderr, so they are structured and pass through the
// service's redacting handler. go-redis has one logger per process: call
// it once, from main. The messages carry server addresses, never keys or
// values.
func UseLogger(l *slog.Logger) {
	if l != nil {
		redis.SetLogger(slogPrintf{l})
	}
}

type slogPrintf struct{ l *slog.Logger }

func (s slogPrintf) Printf(ctx context.Context, format string, v ...any) {
	s.l.WarnContext(ctx, "redis client", "detail", fmt.Sprintf(format, v...))
}
