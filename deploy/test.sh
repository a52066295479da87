#!/usr/bin/env bash
# The test command of the README: prepares what the tests need on a fresh
# machine (Redis on 127.0.0.1:6379, a 3-master Redis Cluster on loopback
# ports) and runs the whole suite with the race detector.
#
#   bash deploy/test.sh            # everything (what CI runs): unit, Redis,
#                                  # Cluster, durability, browser, fuzz tiers
#   bash deploy/test.sh -short     # fast tier: no process restarts, no
#                                  # cluster, no browser, no fuzzing
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '== %s\n' "$*" >&2; }

ensure_redis_binaries() {
	if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
		log "installing redis-server and redis-tools with apt"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq redis-server redis-tools >/dev/null
	fi
}

ensure_redis() {
	if command -v redis-cli >/dev/null 2>&1 && redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
		log "redis answers on 127.0.0.1:6379"
		return
	fi
	ensure_redis_binaries
	log "starting redis-server on 127.0.0.1:6379"
	mkdir -p /tmp/stepup-redis-6379
	redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
		--dir /tmp/stepup-redis-6379 --logfile /tmp/stepup-redis-6379/redis.log
	for _ in $(seq 1 50); do
		redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG && return
		sleep 0.1
	done
	log "redis did not start"; exit 1
}

short=""
if [ "${1:-}" = "-short" ]; then short="-short"; shift; fi

ensure_redis
ensure_redis_binaries # the outage and cluster tiers start their own redis-server

if [ -z "$short" ] && [ -x deploy/redis-cluster/cluster.sh ]; then
	deploy/redis-cluster/cluster.sh start
	trap 'deploy/redis-cluster/cluster.sh stop' EXIT
	export STEPUP_REDIS_CLUSTER="${STEPUP_REDIS_CLUSTER:-$(deploy/redis-cluster/cluster.sh addrs)}"
	log "redis cluster: $STEPUP_REDIS_CLUSTER"
fi

if [ -z "$short" ] && [ "${STEPUP_SKIP_BROWSER:-}" != "1" ]; then
	bash deploy/ensure-chromium.sh # the demo's browser tier drives Debian's chromium
fi

log "go vet"
go vet ./...
log "go test -race $short"
go test -race -count=1 -timeout 14m $short ./... "$@"

if [ -z "$short" ] && [ $# -eq 0 ]; then
	log "fuzz tier (bounded)"
	bash deploy/fuzz.sh
fi
