#!/usr/bin/env bash
# Hot-path benchmarks, in benchstat's format, into a file.
#
#   bash deploy/bench.sh [OUT]            # OUT default: bench-<commit>-<time>.txt
#   COUNT=10 BENCH='Webhook|Observe' BENCHTIME=500ms bash deploy/bench.sh new.txt
#
# Compare two runs (before/after a change):
#
#   go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da old.txt new.txt
#
# Needs the standalone Redis of the tests (STEPUP_REDIS_ADDR, default
# 127.0.0.1:6379): the redisstore and redis webhook benchmarks use it under a
# fresh key prefix that is deleted afterwards. Wall-clock numbers only mean
# something on a quiet machine: the load average goes into the file.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-bench-$(git rev-parse --short HEAD 2>/dev/null || echo tree)-$(date -u +%Y%m%dT%H%M%SZ).txt}
count=${COUNT:-6}
bench=${BENCH:-.}
benchtime=${BENCHTIME:-1s}
pkgs=(
	./adapters/standard/ # signature verification, event parsing
	./adapters/liveperson/ # the same for LivePerson notifications
	./adapters/oidc/     # ID token verification
	./bridge/memstore/   # the store call, in memory
	./bridge/redisstore/ # the store call, on Redis
	./bridge/telemetry/  # log redaction: on every log line
	./cmd/stepup-bridge/ # the whole webhook path through the router
)

{
	# benchstat keeps "key: value" lines as configuration of the results below.
	echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- . 2>/dev/null || echo '+dirty')"
	echo "go: $(go version | cut -d' ' -f3)"
	echo "loadavg: $(cut -d' ' -f1-3 /proc/loadavg)"
	go test -run '^$' -bench "$bench" -benchmem -benchtime "$benchtime" -count "$count" "${pkgs[@]}"
} | tee "$out"
echo "wrote $out; compare with: go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da OLD $out" >&2
