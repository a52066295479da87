#!/usr/bin/env bash
# Runs every fuzz target of the inbound side (webhook bodies, signatures,
# JWTs, login events, configuration) for a bounded time each. A crash
# fails the run and go writes the input to testdata/fuzz/<target>/ for a
# regression test.
#
#   bash deploy/fuzz.sh              # 8s per target (what CI runs)
#   FUZZTIME=5m bash deploy/fuzz.sh  # a longer hunt
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-8s}"
targets=(
	"./adapters/standard FuzzParseWebhook"
	"./adapters/liveperson FuzzParse"
	"./adapters/liveperson FuzzVerify"
	"./adapters/oidc FuzzVerify"
	"./adapters/oidc FuzzMapIdentity"
	"./adapters/idpevents FuzzOktaParse"
	"./adapters/idpevents FuzzOktaChallenge"
	"./adapters/idpevents FuzzKeycloakParse"
	"./adapters/idpevents FuzzAuth0ActionToken"
	"./adapters/idpevents FuzzJWTToken"
	"./config FuzzParse"
	"./bridge/redisstore FuzzDecodeSession"
	"./bridge/redisstore FuzzParseConv"
	"./bridge/redisstore FuzzParseHandle"
)
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	printf '== fuzz %s %s (%s)\n' "$pkg" "$name" "$fuzztime" >&2
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg"
done
