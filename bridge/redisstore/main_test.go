package redisstore_test

import (
	"log/slog"
	"os"
	"testing"

	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore"
)

// TestMain quiets go-redis' own log: the outage and failover tests make it
// print a line per failed dial; the errors the tests check carry the same.
func TestMain(m *testing.M) {
	redisstore.UseLogger(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}
