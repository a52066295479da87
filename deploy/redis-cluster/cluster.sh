#!/usr/bin/env bash
# A throwaway 3-master Redis Cluster on loopback ports, for the cluster
# test tier (no replicas, no persistence, data under /tmp).
#
#   deploy/redis-cluster/cluster.sh start   # start the nodes, create the cluster, wait for cluster_state:ok
#   deploy/redis-cluster/cluster.sh addrs   # 127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103
#   deploy/redis-cluster/cluster.sh stop    # shut the nodes down and remove their data
#
#   STEPUP_CLUSTER_PORTS="7101 7102 7103"   # ports (at least 3)
#   STEPUP_CLUSTER_DIR=/tmp/stepup-redis-cluster
#
# Tests read the seeds from STEPUP_REDIS_CLUSTER:
#   export STEPUP_REDIS_CLUSTER=$(deploy/redis-cluster/cluster.sh addrs)
set -euo pipefail

ports=(${STEPUP_CLUSTER_PORTS:-7101 7102 7103})
base=${STEPUP_CLUSTER_DIR:-/tmp/stepup-redis-cluster}
host=127.0.0.1

log() { printf '== cluster: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

cli() { redis-cli -h "$host" -p "$1" "${@:2}"; }

addrs() {
	local out=() p
	for p in "${ports[@]}"; do out+=("$host:$p"); done
	(IFS=,; echo "${out[*]}")
}

wait_ping() {
	local p=$1
	for _ in $(seq 1 100); do
		cli "$p" ping 2>/dev/null | grep -q PONG && return 0
		sleep 0.05
	done
	die "node $p does not answer; see $base/$p/redis.log"
}

state_ok() { cli "$1" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; }

start() {
	[ "${#ports[@]}" -ge 3 ] || die "a cluster needs at least 3 masters (STEPUP_CLUSTER_PORTS)"
	command -v redis-server >/dev/null && command -v redis-cli >/dev/null || die "redis-server and redis-cli are needed"
	local p
	# A cluster left behind by an interrupted run (its data dir exists and
	# the process that started it is gone) is replaced; one still in use by
	# another run, or anything else on the ports, is not ours to stop.
	if [ -d "$base" ]; then
		local owner
		owner=$(cat "$base/owner" 2>/dev/null || true)
		if [ -n "$owner" ] && kill -0 "$owner" 2>/dev/null; then
			die "a cluster started by pid $owner is in use (stop it, or set STEPUP_CLUSTER_PORTS and STEPUP_CLUSTER_DIR)"
		fi
		stop
	fi
	for p in "${ports[@]}"; do
		if cli "$p" ping >/dev/null 2>&1; then
			die "something already answers on $host:$p (set STEPUP_CLUSTER_PORTS to other ports)"
		fi
	done
	rm -rf "$base"
	mkdir -p "$base"
	echo "$PPID" >"$base/owner" # the caller, e.g. deploy/test.sh
	for p in "${ports[@]}"; do
		mkdir -p "$base/$p"
		redis-server --daemonize yes --bind "$host" --port "$p" \
			--cluster-enabled yes --cluster-config-file "$base/$p/nodes.conf" --cluster-node-timeout 2000 \
			--save "" --appendonly no --dir "$base/$p" \
			--logfile "$base/$p/redis.log" --pidfile "$base/$p/redis.pid"
	done
	for p in "${ports[@]}"; do wait_ping "$p"; done
	log "creating cluster on $(addrs)"
	local nodes=()
	for p in "${ports[@]}"; do nodes+=("$host:$p"); done
	redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$base/create.log" 2>&1 ||
		{ cat "$base/create.log" >&2; die "redis-cli --cluster create failed"; }
	# Every node must agree before tests send commands (slots propagate by gossip).
	for _ in $(seq 1 200); do
		local ok=1
		for p in "${ports[@]}"; do state_ok "$p" || { ok=0; break; }; done
		if [ "$ok" = 1 ]; then log "cluster_state:ok on ${#ports[@]} masters"; return 0; fi
		sleep 0.05
	done
	die "cluster did not reach cluster_state:ok; see $base/create.log"
}

stop() {
	local p
	for p in "${ports[@]}"; do
		cli "$p" shutdown nosave >/dev/null 2>&1 || true
	done
	# Wait for the processes to go (the pid files name them) before removing their dirs.
	for p in "${ports[@]}"; do
		local pid
		pid=$(cat "$base/$p/redis.pid" 2>/dev/null || true)
		if [ -n "$pid" ]; then
			for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
		fi
	done
	rm -rf "$base"
	log "stopped"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
addrs) addrs ;;
*) echo "usage: $0 start|stop|addrs" >&2; exit 2 ;;
esac
