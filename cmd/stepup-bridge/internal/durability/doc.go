// Package durability holds the slow tier of tests that prove the outbox's
// delivery guarantees end to end: the real stepup-bridge binary (built with
// go build) as a subprocess, private redis-server processes with
// append-only persistence, a checking fake platform (standardtest) behind a
// fault-injecting proxy, and the outbox CLI. Processes are killed with
// SIGKILL mid-burst; every effect must still be delivered, once per
// idempotency key.
//
// Run: go test -race ./cmd/stepup-bridge/internal/durability/ (skipped with
// -short; needs redis-server on PATH and 127.0.0.1:6379 for the store-level
// test).
package durability
